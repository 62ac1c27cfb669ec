// Where a new attempt resumes from: the newest COMMITTED checkpoint, asked of the checkpoint
// service (its records are its own; the scheduler does not read them behind its back). The
// same client answers when jobs last committed one, for the preemption order (last-commits.ts).
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CheckpointServiceClient } from '@gantry/proto';
import { internalChannelCredentials, internalChannelOptions, type InternalTls } from '@gantry/service-kit';

/** Job ids per ListLastCommits call: the request bound on any list (the admission module's). */
export const LAST_COMMITS_PER_CALL = 4096;

export class ResumeSource {
  private readonly client: CheckpointServiceClient;

  /** With `tls`, over internal mutual TLS. */
  constructor(address: string, tls?: InternalTls, private readonly timeoutMs = 2_000) {
    this.client = new CheckpointServiceClient(address, internalChannelCredentials(tls), internalChannelOptions(tls));
  }

  /**
   * The path of the job's newest committed checkpoint, '' when it has none. Throws when the
   * checkpoint service cannot answer: placing the attempt without its checkpoint would
   * silently restart training from scratch, so the caller waits instead.
   */
  newestCommitted(jobId: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.client.getLatestCheckpoint({ jobId }, new Metadata(), { deadline: Date.now() + this.timeoutMs }, (err: ServiceError | null, res) => {
        if (err?.code === status.NOT_FOUND) resolve('');
        else if (err) reject(new Error(`checkpoint service: ${err.details || err.message}`));
        else resolve(res?.checkpoint?.path ?? '');
      });
    });
  }

  /**
   * When each job last committed a checkpoint (ms; absent: never, as far as the service knows).
   * Throws when the checkpoint service does not answer within `timeoutMs`.
   */
  async lastCommits(jobIds: readonly string[], timeoutMs: number): Promise<Map<string, number>> {
    const deadline = Date.now() + timeoutMs;
    const chunks: string[][] = [];
    for (let i = 0; i < jobIds.length; i += LAST_COMMITS_PER_CALL) chunks.push(jobIds.slice(i, i + LAST_COMMITS_PER_CALL));
    const answers = await Promise.all(chunks.map((ids) => new Promise<Record<string, Date>>((resolve, reject) => {
      this.client.listLastCommits({ jobIds: ids }, new Metadata(), { deadline }, (err: ServiceError | null, res) => {
        if (err) reject(new Error(`checkpoint service: ${err.details || err.message}`));
        else resolve(res?.lastCommits ?? {});
      });
    })));
    const out = new Map<string, number>();
    for (const answer of answers) for (const [job, at] of Object.entries(answer)) out.set(job, at.getTime());
    return out;
  }

  close(): void {
    this.client.close();
  }
}

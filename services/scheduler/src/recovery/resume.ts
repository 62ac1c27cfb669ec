// Where a new attempt resumes from: the newest COMMITTED checkpoint, asked of the checkpoint
// service (its records are its own; the scheduler does not read them behind its back).
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CheckpointServiceClient } from '@gantry/proto';
import { internalChannelCredentials, internalChannelOptions, type InternalTls } from '@gantry/service-kit';

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

  close(): void {
    this.client.close();
  }
}

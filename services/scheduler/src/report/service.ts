// Reads what the operations report needs and hands it to the pure analyses (analyze.ts):
// every node's event log, NFS WRITE series and latest telemetry (the scheduler's own records), the jobs
// created in the window (newest first, a page at a time, stopping at the window's start),
// with the attempts compacted out of their records (their attempts archives, one pipelined
// read), and, from the checkpoint process's API, the jobs' committed checkpoints and the
// storage targets. Every read is bounded: event logs and NFS series are capped in Redis, and
// what the caps cut off inside the window is listed in the report's `limits`.
import { Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import {
  CheckpointServiceClient, StorageServiceClient, type Attempt, type Checkpoint, type Job, type OperationsReport, type StorageTarget, type TelemetryBatch,
} from '@gantry/proto';
import { internalChannelCredentials, internalChannelOptions, type InternalTls } from '@gantry/service-kit';
import { ATTEMPTS_ARCHIVE_CAP, HealthStore, NFS_WRITE_SERIES_CAP, NODE_EVENT_LOG_CAP, NodeTelemetryStore } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { DEFAULT_HEALTH_CONFIG, type HealthConfig } from '../health/index.js';
import { parseHealthConfigText } from '../health-monitor/config-source.js';
import { xidFailureClass } from '../recovery/xid-policy.js';
import { operationsReport, type NodeRecords } from './analyze.js';
import { NfsQueueTally } from './nfs.js';

/** The longest window a report covers: 90 days. */
export const MAX_REPORT_SECONDS = 90 * 86_400;
export const MIN_REPORT_SECONDS = 60;
const JOB_PAGE = 200;
/** Checkpoint and storage calls run this many at a time. */
const CHECKPOINT_CONCURRENCY = 8;

/** Maps `items` through `fn`, at most `limit` at a time, keeping the order. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function unaryCall<Req, Res>(client: Client, method: (req: Req, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res?: Res) => void) => unknown, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(new Error(err.details || err.message)) : resolve(res!)));
  });
}

/** The sum of a node's RDMA port rates in bytes/s, from its newest batch; undefined when it reports none. */
function linkBytesPerSecond(batch: TelemetryBatch | undefined): number | undefined {
  const gbps = (batch?.rdmaPorts ?? []).map((p) => p.rateGbps).filter((r): r is number => r !== undefined && r > 0);
  return gbps.length ? (gbps.reduce((s, r) => s + r, 0) * 1e9) / 8 : undefined;
}

export class ReportSource {
  private readonly checkpoints: CheckpointServiceClient;
  private readonly storage: StorageServiceClient;
  private readonly telemetry: NodeTelemetryStore;
  private readonly health: HealthStore;

  /** With `tls`, over internal mutual TLS (as the resume source). */
  constructor(private readonly ctx: SchedulerContext, checkpointAddr: string, tls?: InternalTls, private readonly timeoutMs = 5_000) {
    this.checkpoints = new CheckpointServiceClient(checkpointAddr, internalChannelCredentials(tls), internalChannelOptions(tls));
    this.storage = new StorageServiceClient(checkpointAddr, internalChannelCredentials(tls), { channelOverride: this.checkpoints.getChannel() });
    this.telemetry = new NodeTelemetryStore(ctx.redis);
    this.health = new HealthStore(ctx.redis);
  }

  async report(sinceSeconds: number, nowMs = Date.now()): Promise<OperationsReport> {
    const fromMs = nowMs - sinceSeconds * 1000;
    const limits: string[] = [];
    const config = await this.healthConfig();
    const nfs = new NfsQueueTally(fromMs, nowMs);
    const names = await this.ctx.nodes.names();
    let historyCut = 0;
    const nodes: NodeRecords[] = [];
    for (const name of names) {
      const events = await this.telemetry.events(name, NODE_EVENT_LOG_CAP);
      const oldest = events.at(-1)?.time?.getTime();
      if (events.length >= NODE_EVENT_LOG_CAP && oldest !== undefined && oldest > fromMs) {
        limits.push(`${name}: the event log keeps its last ${NODE_EVENT_LOG_CAP} entries, from ${new Date(oldest).toISOString()}; earlier events of the window are not counted`);
      }
      // The whole batches kept cover minutes: the report's hour and more come from the series.
      const { samples, cut } = await this.telemetry.nfsWritesSince(name, fromMs);
      for (const s of samples) nfs.addSample(name, s);
      if (cut && (samples[0]?.time?.getTime() ?? 0) > fromMs + 60_000) historyCut++;
      const { latest } = await this.telemetry.get(name, 0);
      nodes.push({ name, events, linkBytesPerSecond: latest && (latest.time?.getTime() ?? 0) > fromMs ? linkBytesPerSecond(latest) : undefined });
    }
    if (historyCut > 0) limits.push(`NFS queueing: ${historyCut} node(s) keep the NFS WRITE figures of only their last ${NFS_WRITE_SERIES_CAP} telemetry batches, so it covers less than the window (see covered_from)`);
    const jobs = await this.jobsSince(fromMs);
    const archivedAttempts = await this.archivedAttempts(jobs, limits);
    const { checkpoints, targets } = await this.checkpointRecords(jobs, limits);
    return operationsReport({
      fromMs, toMs: nowMs, nodes, jobs, archivedAttempts, checkpoints, targets, nfs, limits,
      xidClass: (x) => xidFailureClass(x, config).failureClass,
    });
  }

  close(): void {
    this.checkpoints.close();
  }

  private async healthConfig(): Promise<HealthConfig> {
    const json = await this.health.configJson();
    return json ? parseHealthConfigText(json, 'stored health config') : DEFAULT_HEALTH_CONFIG;
  }

  /** Jobs created at or after `fromMs`: the job index is newest first, so paging stops at the first older one. */
  private async jobsSince(fromMs: number): Promise<Job[]> {
    const out: Job[] = [];
    let pageToken = '';
    for (;;) {
      const page = await this.ctx.jobs.list({ pageSize: JOB_PAGE, pageToken });
      for (const j of page.jobs) {
        if ((j.createdAt?.getTime() ?? 0) < fromMs) return out;
        out.push(j);
      }
      if (!page.nextPageToken) return out;
      pageToken = page.nextPageToken;
    }
  }

  /**
   * The archived attempts of the jobs whose records dropped some; what an archive lacks (its
   * cap, or attempts compacted before archives existed) is listed in `limits`.
   */
  private async archivedAttempts(jobs: Job[], limits: string[]): Promise<Map<string, Attempt[]>> {
    const compacted = jobs.filter((j) => j.attemptsCompacted > 0);
    const archived = await this.ctx.jobs.archivedAttempts(compacted.map((j) => j.id));
    let missing = 0;
    let short = 0;
    for (const j of compacted) {
      const lacking = j.attemptsCompacted - (archived.get(j.id)?.length ?? 0);
      if (lacking > 0) {
        missing += lacking;
        short++;
      }
    }
    if (missing > 0) {
      limits.push(`attempts: ${short} job(s) lack ${missing} of their oldest attempts (compacted from the record before the attempts archive existed, or beyond its ${ATTEMPTS_ARCHIVE_CAP} per job); retry chains count them, but no failure, exclusion or retry interval of theirs is in the figures`);
    }
    return archived;
  }

  /** The checkpoint service owns checkpoint records: asked through its API, never its Redis keys. */
  private async checkpointRecords(jobs: Job[], limits: string[]): Promise<{ checkpoints: Checkpoint[]; targets: StorageTarget[] }> {
    try {
      const targets = (await unaryCall(this.storage, this.storage.listStorageTargets, {}, this.timeoutMs)).targets;
      const lists = await mapLimited(jobs, CHECKPOINT_CONCURRENCY, async (j) =>
        (await unaryCall(this.checkpoints, this.checkpoints.listCheckpoints, { jobId: j.id, committedOnly: true }, this.timeoutMs)).checkpoints);
      return { checkpoints: lists.flat(), targets };
    } catch (err) {
      limits.push(`checkpoints: the checkpoint service did not answer (${(err as Error).message}); no checkpoint figures`);
      return { checkpoints: [], targets: [] };
    }
  }
}

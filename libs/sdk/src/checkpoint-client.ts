// CheckpointClient: the checkpoint registry (gantry.v1.CheckpointService), which the checkpoint
// service serves on its own address, separate from the gateway.
import {
  CheckpointFormat,
  CheckpointServiceClient,
  CheckpointSpec,
  CheckpointState,
  ListCheckpointsRequest,
  type Checkpoint,
  type CheckpointEvent,
  type CheckpointRetention,
} from '@gantry/proto';
import { GantryError, status } from './errors.js';
import { addDefaults, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Rpc, type CallOptions } from './rpc.js';

export interface BeginCheckpointInput {
  jobId: string;
  attempt: number;
  step: number;
  path: string;
  shardCount: number;
}

function present(value: Checkpoint | undefined): Checkpoint {
  if (value === undefined) throw new GantryError(status.INTERNAL, 'server response has no checkpoint');
  return value;
}

/** JobSpec.checkpoint.format by name, as the CLI and job files spell it ('auto' = detect). */
export const CHECKPOINT_FORMAT_NAMES: Record<string, CheckpointFormat> = {
  auto: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED,
  dcp: CheckpointFormat.CHECKPOINT_FORMAT_DCP,
  megatron: CheckpointFormat.CHECKPOINT_FORMAT_MEGATRON,
  deepspeed: CheckpointFormat.CHECKPOINT_FORMAT_DEEPSPEED,
  hf: CheckpointFormat.CHECKPOINT_FORMAT_HF,
  torchtitan: CheckpointFormat.CHECKPOINT_FORMAT_TORCHTITAN,
  marker: CheckpointFormat.CHECKPOINT_FORMAT_MARKER,
};

export function parseCheckpointFormat(name: string): CheckpointFormat {
  const f = CHECKPOINT_FORMAT_NAMES[name.trim().toLowerCase()];
  if (f === undefined) throw new Error(`unknown checkpoint format "${name}" (one of ${Object.keys(CHECKPOINT_FORMAT_NAMES).join(', ')})`);
  return f;
}

export function checkpointFormatName(f: CheckpointFormat): string {
  return Object.entries(CHECKPOINT_FORMAT_NAMES).find(([, v]) => v === f)?.[0] ?? String(f);
}

/** The state as the issue names it: WRITING is shown as IN_PROGRESS. */
export function checkpointStateName(s: CheckpointState): string {
  if (s === CheckpointState.CHECKPOINT_STATE_WRITING) return 'IN_PROGRESS';
  return (CheckpointState[s] ?? String(s)).replace('CHECKPOINT_STATE_', '');
}

export interface CheckpointSpecInput {
  /** Absolute directory, the same path on every node; ranks get it as GANTRY_CHECKPOINT_DIR. */
  dir: string;
  /** A name of CHECKPOINT_FORMAT_NAMES or the enum; default auto. */
  format?: string | CheckpointFormat;
  storageTarget?: string;
  /**
   * Hold the ranks' checkpoint flushes (close/fclose/fsync/fdatasync of files written inside
   * `dir`) until storage admits them, for training code that does not ask itself; needs a
   * storage target that resolves (docs/storage.md).
   */
  admitFlushes?: boolean;
  retention?: Partial<CheckpointRetention>;
}

/** JobSpec.checkpoint from friendlier input: `checkpointSpec({ dir: '/ckpt/run', format: 'dcp', retention: { keepLast: 3 } })`. */
export function checkpointSpec(input: CheckpointSpecInput): CheckpointSpec {
  const format = typeof input.format === 'string' ? parseCheckpointFormat(input.format) : (input.format ?? CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED);
  return CheckpointSpec.fromPartial({ dir: input.dir, format, storageTarget: input.storageTarget ?? '', ...(input.retention && { retention: input.retention }), ...(input.admitFlushes && { admitFlushes: true }) });
}

export class CheckpointClient {
  readonly options: ResolvedClientOptions;
  private readonly rpc: Rpc;
  private readonly client: CheckpointServiceClient;

  /** `address` has no special default here: `$GANTRY_ADDR` names the gateway, so pass the checkpoint service's. */
  constructor(options: ClientOptions = {}) {
    this.options = addDefaults(options);
    this.rpc = new Rpc(this.options);
    this.client = new CheckpointServiceClient(this.options.address, this.options.credentials, this.options.channelOptions);
  }

  close(): void {
    this.client.close();
  }

  /** Not retried: each call registers a new checkpoint. */
  async beginCheckpoint(input: BeginCheckpointInput, options?: CallOptions): Promise<Checkpoint> {
    const res = await this.rpc.unary(this.client.beginCheckpoint.bind(this.client), input, 'unsafe', options);
    return present(res.checkpoint);
  }

  /** Retried on UNAVAILABLE: reporting a shard index twice records it once. */
  async reportShard(checkpointId: string, shardIndex: number, bytes: number, options?: CallOptions): Promise<Checkpoint> {
    const req = { checkpointId, shardIndex, bytes };
    const res = await this.rpc.unary(this.client.reportCheckpointShard.bind(this.client), req, 'idempotent', options);
    return present(res.checkpoint);
  }

  /** Not retried: a second commit may be refused, so the caller should look (getLatest) first. */
  async commitCheckpoint(checkpointId: string, options?: CallOptions): Promise<Checkpoint> {
    const res = await this.rpc.unary(this.client.commitCheckpoint.bind(this.client), { checkpointId }, 'unsafe', options);
    return present(res.checkpoint);
  }

  async listCheckpoints(jobId: string, { committedOnly = false, ...options }: CallOptions & { committedOnly?: boolean } = {}): Promise<Checkpoint[]> {
    const req = ListCheckpointsRequest.fromPartial({ jobId, committedOnly });
    const res = await this.rpc.unary(this.client.listCheckpoints.bind(this.client), req, 'read', options);
    return res.checkpoints;
  }

  async getCheckpoint(checkpointId: string, options?: CallOptions): Promise<Checkpoint> {
    const res = await this.rpc.unary(this.client.getCheckpoint.bind(this.client), { checkpointId }, 'read', options);
    return present(res.checkpoint);
  }

  /** What discovery and retention did to the job's checkpoints, newest first. */
  async listCheckpointEvents(jobId: string, options?: CallOptions): Promise<CheckpointEvent[]> {
    const res = await this.rpc.unary(this.client.listCheckpointEvents.bind(this.client), { jobId }, 'read', options);
    return res.events;
  }

  /** The newest committed checkpoint of the job, or undefined when it has none. */
  async getLatestCheckpoint(jobId: string, options?: CallOptions): Promise<Checkpoint | undefined> {
    const res = await this.rpc.unary(this.client.getLatestCheckpoint.bind(this.client), { jobId }, 'read', options);
    return res.checkpoint;
  }
}

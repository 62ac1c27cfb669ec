// CheckpointClient: the checkpoint registry (gantry.v1.CheckpointService), which the checkpoint
// service serves on its own address, separate from the gateway.
import {
  CheckpointServiceClient,
  ListCheckpointsRequest,
  type Checkpoint,
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

  /** The newest committed checkpoint of the job, or undefined when it has none. */
  async getLatestCheckpoint(jobId: string, options?: CallOptions): Promise<Checkpoint | undefined> {
    const res = await this.rpc.unary(this.client.getLatestCheckpoint.bind(this.client), { jobId }, 'read', options);
    return res.checkpoint;
  }
}

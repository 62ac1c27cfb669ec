// Prometheus counters of the registry's traffic, registered on the registry the kit serves at
// /metrics. Counted only on real changes, so client retries do not inflate them.
import { Counter, type Registry } from 'prom-client';

export interface CheckpointMetrics {
  begun: Counter;
  committed: Counter;
  shardBytes: Counter;
}

export function createCheckpointMetrics(registry: Registry): CheckpointMetrics {
  return {
    begun: new Counter({
      name: 'gantry_checkpoints_begun_total',
      help: 'Checkpoints registered (WRITING); a retried begin is not counted again.',
      registers: [registry],
    }),
    committed: new Counter({
      name: 'gantry_checkpoints_committed_total',
      help: 'Checkpoints committed with every shard reported; a repeated commit is not counted again.',
      registers: [registry],
    }),
    shardBytes: new Counter({
      name: 'gantry_checkpoint_shard_bytes_total',
      help: 'Bytes of checkpoint shards reported, counted at the first report of each shard.',
      registers: [registry],
    }),
  };
}

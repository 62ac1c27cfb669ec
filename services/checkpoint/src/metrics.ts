// Prometheus counters of the registry's traffic, registered on the registry the kit serves at
// /metrics. Counted only on real changes, so client retries do not inflate them.
import { Counter, type Registry } from 'prom-client';

export interface CheckpointMetrics {
  begun: Counter;
  committed: Counter;
  shardBytes: Counter;
  corrupt: Counter;
  deleted: Counter;
  dryRuns: Counter;
  refused: Counter;
  reportsDropped: Counter<'reason'>;
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
      help: 'Checkpoints committed (every shard reported, or found complete on disk); a repeated commit is not counted again.',
      registers: [registry],
    }),
    corrupt: new Counter({
      name: 'gantry_checkpoints_corrupt_total',
      help: 'Checkpoints found CORRUPT (a completion marker claims them but a file is missing, short or unreadable).',
      registers: [registry],
    }),
    deleted: new Counter({ name: 'gantry_checkpoints_deleted_total', help: 'Checkpoints deleted by retention.', registers: [registry] }),
    dryRuns: new Counter({ name: 'gantry_checkpoints_delete_dry_runs_total', help: 'Deletions retention would have made (retention.delete is off).', registers: [registry] }),
    refused: new Counter({ name: 'gantry_checkpoints_delete_refused_total', help: 'Deletions an agent refused (outside the job directory, symlink, unknown job).', registers: [registry] }),
    reportsDropped: new Counter({
      name: 'gantry_checkpoint_reports_dropped_total',
      help: 'Checkpoint reports dropped as not the sender\'s to make: payload names another node or job than its subject (node-mismatch, job-mismatch, unbound-subject), sender not node rank 0\'s node of the attempt (not-watcher) or, for an explicit report, not a node of the attempt (not-placed), attempt never placed as far as the job events say (unknown-attempt).',
      labelNames: ['reason'], registers: [registry],
    }),
    shardBytes: new Counter({
      name: 'gantry_checkpoint_shard_bytes_total',
      help: 'Bytes of checkpoint shards reported, counted at the first report of each shard.',
      registers: [registry],
    }),
  };
}

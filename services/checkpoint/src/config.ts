// The checkpoint service's environment, validated once at start-up (see loadConfig in the kit).
import { commonEnv, env, loadConfig } from '@gantry/service-kit';
import { retentionPoliciesEnv } from './retention-policy.js';

/** Variables of this service only; REDIS_URL, NATS_URL, METRICS_PORT, BIND_HOST, LOG_LEVEL come from commonEnv. */
export const checkpointEnv = {
  CHECKPOINT_GRPC_PORT: env.port(7072),
  /** How long the checkpoint records of a finished job are kept (seconds). */
  CHECKPOINT_RECORD_TTL_SECONDS: env.int(7 * 24 * 3600, 60),
  /** How often retention passes over the jobs seen since start (grace periods end without a report). */
  CHECKPOINT_RETENTION_INTERVAL_MS: env.ms(60_000),
  /** Retention per tenant, JSON {tenant or "*": policy} (retention-policy.ts); a job's own policy wins. */
  CHECKPOINT_RETENTION_POLICIES: retentionPoliciesEnv,
  /**
   * How long a report for an attempt whose placement this service has not learnt yet (from the
   * job events) is held back and retried before it is dropped (ms).
   */
  CHECKPOINT_REPORT_PLACEMENT_WAIT_MS: env.ms(120_000),
};

export function loadCheckpointConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig({ ...commonEnv, ...checkpointEnv }, source);
}

export type CheckpointConfig = ReturnType<typeof loadCheckpointConfig>;

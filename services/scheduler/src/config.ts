import { z } from 'zod';
import { env } from '@gantry/service-kit';
import { DEFAULT_ATTEMPTS_KEPT, MIN_ATTEMPTS_KEPT } from '@gantry/store';
import { rendezvousEnv } from './dispatch/ports.js';
import { commandSigningKeyEnv } from './agents/signing-key.js';

export const schedulerEnv = {
  SCHEDULER_GRPC_PORT: env.port(7071),
  /** A node whose heartbeats stop for this long is LOST and its jobs go to recovery. */
  HEARTBEAT_TIMEOUT_MS: env.ms(15_000),
  /** Interval agents are told to heartbeat at. */
  HEARTBEAT_INTERVAL_MS: env.ms(2_000),
  /** Leader lease; a standby takes over at most this long after the leader dies. */
  LEASE_TTL_MS: env.ms(5_000),
  /** Upper bound between scheduling passes; submits and releases wake the loop earlier. */
  CYCLE_INTERVAL_MS: env.ms(1_000),
  /**
   * Jobs a pass between full passes decides: the head of the queue, in queue order (Slurm's
   * default_queue_depth); 0: every pass decides the whole queue (docs/scheduling.md, section 1).
   */
  SCHEDULER_QUEUE_DEPTH: env.int(256, 0, 10_000_000),
  /** SIGTERM-to-SIGKILL grace for stopped ranks when the job does not set one. */
  STOP_GRACE_SECONDS: env.int(10, 0, 3600),
  /** How long to wait before re-sending an unacknowledged assignment or stop. */
  COMMAND_RESEND_MS: env.ms(3_000),
  /**
   * Attempts a job's record keeps (at least 2: the current one and the failure it recovers
   * from); older ones are dropped when a new attempt is added and counted in
   * Job.attempts_compacted. Their job events keep them.
   */
  JOB_ATTEMPTS_KEPT: env.int(DEFAULT_ATTEMPTS_KEPT, MIN_ATTEMPTS_KEPT, 100_000),
  /** YAML/JSON scheduling policy (tenants, quotas, fair share, preemption, backfill); seeds Redis when none is stored. */
  SCHEDULING_CONFIG: z.string().min(1).optional(),
  /** The checkpoint service, asked where a new attempt resumes from (GANTRY_RESUME_FROM). */
  CHECKPOINT_ADDR: env.str('127.0.0.1:7072'),
  ...rendezvousEnv,
  /** Agents verify every command's signature with the matching public key (their schedulerPublicKeyFile). */
  ...commandSigningKeyEnv,
  INSTANCE_ID: env.str(`scheduler-${process.pid}-${Math.random().toString(36).slice(2, 8)}`),
};

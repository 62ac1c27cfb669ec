// What every part of the scheduler shares: stores, connections, config and the leader's epoch.
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { Job } from '@gantry/proto';
import type { JobStore, NodeStore } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import type { AgentCommander } from './agents/commands.js';
import type { JobCache } from './jobs/job-cache.js';

export interface SchedulerSettings {
  heartbeatTimeoutMs: number;
  heartbeatIntervalMs: number;
  cycleIntervalMs: number;
  stopGraceSeconds: number;
  /** SCHEDULER_QUEUE_DEPTH: jobs a quick pass decides (0: every pass is full); 256 when absent. */
  queueDepth?: number;
}

export interface SchedulerContext {
  log: Logger;
  nc: NatsConnection;
  js: JetStreamClient;
  redis: Redis;
  jobs: JobStore;
  /** Parsed jobs shared by the loop, heartbeats and health monitor, re-read only when they change. */
  jobCache: JobCache;
  nodes: NodeStore;
  commander: AgentCommander;
  metrics: Registry;
  settings: SchedulerSettings;
  /** The leader's fencing epoch, 0 when this instance does not lead. */
  epoch(): number;
  /** Wakes the scheduling loop (after a submit or a release). */
  kick(): void;
  /** Every rank of the job's current attempt is running: if a recovery produced it, it is over. */
  recovered(job: Job, at: Date): void;
  /** An agent reports the highest fencing epoch it has accepted (see LeaderElector.agentEpoch). */
  agentEpoch(epoch: number): void;
}

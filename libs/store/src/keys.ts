// The Redis key layout, in one place. Everything Gantry keeps in Redis is listed here.
//
//   gantry:job:{id}               hash  state, rev, job (gantry.v1.Job as proto JSON), tenant, created
//   gantry:job:{id}:attempts-archive  list  attempts compacted out of the job's record (gantry.v1.Attempt as proto JSON),
//                                 oldest first, appended by the commit that drops them; capped at its newest 1,000
//                                 (ATTEMPTS_ARCHIVE_CAP). It lives as long as gantry:job:{id}: neither is deleted or
//                                 expires today, and whatever comes to remove a job must remove its archive with it
//   gantry:jobs:all               zset  job ids by creation time (ms)
//   gantry:jobs:state:{STATE}     zset  job ids in that state, by creation time
//   gantry:jobs:tenant:{tenant}   zset  the tenant's job ids by creation time (lists one tenant without reading others' jobs)
//   gantry:jobs:tenant:{tenant}:state:{STATE}  zset  the tenant's job ids in that state, by creation time
//   gantry:jobs:index-version     str   version of the job indexes above (older jobs are indexed once at start)
//   gantry:jobs:changes           stream id of every job written (submit, commit), capped: readers keep parsed jobs and re-read only these
//   gantry:idem:{tenant}:{key}    str   "{job id} {spec hash}" of the job created with that idempotency key
//   gantry:node:{name}            hash  state, rev, node (gantry.v1.Node JSON), hb (last heartbeat ms), instance
//   gantry:nodes                  zset  node names (score 0, lexicographic)
//   gantry:heartbeats             zset  node names by last heartbeat (ms): finds silent nodes without reading all
//   gantry:nodes:changes          stream names of nodes whose record or allocations were written (commit-node, commit-job's
//                                 claims and releases, release-gpus), capped: the scheduling pass re-reads only these
//   gantry:node:{name}:alloc      hash  gpu index -> "{jobId}:{attempt}:{rank}"
//   gantry:node:{name}:ports      hash  rendezvous port -> "{jobId}:{attempt}:0" (node rank 0's owner; freed with its GPUs)
//   gantry:node:{name}:telemetry  str   latest TelemetryBatch (protobuf)
//   gantry:node:{name}:telemetry:history  list  earlier TelemetryBatches, newest first (capped at TELEMETRY_HISTORY_CAP)
//   gantry:node:{name}:telemetry:nfs-writes  list  NfsWriteSample (protobuf) of each batch, the latest's included,
//                                 newest first (capped at NFS_WRITE_SERIES_CAP): the operations report's NFS queueing
//   gantry:node:{name}:events     list  NodeHostEvent (protobuf), newest first (capped)
//   gantry:outbox                 stream events to relay to NATS (subject, id, data)
//   gantry:outbox:cursor          str   id of the last outbox entry relayed
//   gantry:leader                 str   instance id of the scheduler leader (PX lease)
//   gantry:leader:epoch           str   fencing epoch of the current lease
//   gantry:epoch                  str   epoch counter (INCR on every new lease)
//   gantry:config:scheduling      str   scheduling policy (JSON; validated by the scheduler)
//   gantry:usage                  hash  tenant -> decayed GPU usage record (JSON), for fair share
//   gantry:explain                hash  pending job id -> why it waits (JSON), from the last pass
//   gantry:checkpoint:{id}        hash  checkpoint record (see checkpoint service)
//   gantry:job:{id}:checkpoints   zset  checkpoint ids by step
//   gantry:checkpoints:last-commit hash job id -> ms of its newest committed checkpoint
//   gantry:job:{id}:checkpoint-events list  JSON events (committed, corrupt, deleted, dry runs), capped
//   gantry:job:{id}:checkpoint-meta   hash  dir, node, retention (JSON) from the latest report
//   gantry:job:{id}:checkpoint-placement hash attempt -> its nodes, node rank 0's first (from job events), for who may report
//   gantry:job:{id}:checkpoint-finished  str  the record TTL (s) of a job that finished, itself expiring with its records (PX)
//   gantry:instances              hash  "{service}/{instance}" -> announced version, start and last-seen (JSON)
//   gantry:config:health          str   node health detector config (JSON; validated by the scheduler)
//   gantry:health:state           str   the detector's state (baselines, hysteresis counters; JSON)
//   gantry:health:cursor          hash  node -> time (ms) of the newest telemetry batch evaluated
//   gantry:health:xids            list  XidEvents (protobuf) received and not yet evaluated, oldest first
//   gantry:health:operator        list  operator quarantines/releases (JSON) the detector has not applied yet
//   gantry:health:nodes           hash  node -> NodeHealth (proto JSON) of the latest evaluation
//   gantry:health:cluster         str   GetClusterHealthResponse (proto JSON) of the latest evaluation
//   gantry:audit                  stream audit trail of mutating gateway calls (capped, audit.ts)
//   gantry:storage:{target}:{mode}:*  storage admission pool (storage-leases.ts): leases (zset id -> expiry ms),
//                                 holders (hash), waiters (zset id -> ticket), waiters:seen, waiters:info, pool (hash limit, seq),
//                                 nodes (hash id -> holder node, for the per-node cap)
export const PREFIX = 'gantry';

export const keys = {
  job: (id: string) => `${PREFIX}:job:${id}`,
  /** The attempts compacted out of a job's record (list of Attempt JSON, oldest first, capped). */
  jobAttemptsArchive: (id: string) => `${PREFIX}:job:${id}:attempts-archive`,
  jobsAll: `${PREFIX}:jobs:all`,
  jobsInState: (state: string) => `${PREFIX}:jobs:state:${state}`,
  jobsOfTenant: (tenant: string) => `${PREFIX}:jobs:tenant:${tenant}`,
  jobsOfTenantInState: (tenant: string, state: string) => `${PREFIX}:jobs:tenant:${tenant}:state:${state}`,
  jobIndexVersion: `${PREFIX}:jobs:index-version`,
  jobChanges: `${PREFIX}:jobs:changes`,
  idempotency: (tenant: string, key: string) => `${PREFIX}:idem:${tenant}:${key}`,
  node: (name: string) => `${PREFIX}:node:${name}`,
  nodes: `${PREFIX}:nodes`,
  heartbeats: `${PREFIX}:heartbeats`,
  nodeChanges: `${PREFIX}:nodes:changes`,
  nodeAlloc: (name: string) => `${PREFIX}:node:${name}:alloc`,
  nodePorts: (name: string) => `${PREFIX}:node:${name}:ports`,
  nodeTelemetry: (name: string) => `${PREFIX}:node:${name}:telemetry`,
  nodeTelemetryHistory: (name: string) => `${PREFIX}:node:${name}:telemetry:history`,
  nodeNfsWrites: (name: string) => `${PREFIX}:node:${name}:telemetry:nfs-writes`,
  nodeEvents: (name: string) => `${PREFIX}:node:${name}:events`,
  outbox: `${PREFIX}:outbox`,
  outboxCursor: `${PREFIX}:outbox:cursor`,
  leader: `${PREFIX}:leader`,
  leaderEpoch: `${PREFIX}:leader:epoch`,
  epochCounter: `${PREFIX}:epoch`,
  schedulingConfig: `${PREFIX}:config:scheduling`,
  usage: `${PREFIX}:usage`,
  explain: `${PREFIX}:explain`,
  checkpoint: (id: string) => `${PREFIX}:checkpoint:${id}`,
  jobCheckpoints: (jobId: string) => `${PREFIX}:job:${jobId}:checkpoints`,
  checkpointLastCommit: `${PREFIX}:checkpoints:last-commit`,
  /** A job's checkpoint events (list of JSON, newest first, capped) and its checkpoint settings (dir, node, retention). */
  jobCheckpointEvents: (jobId: string) => `${PREFIX}:job:${jobId}:checkpoint-events`,
  jobCheckpointMeta: (jobId: string) => `${PREFIX}:job:${jobId}:checkpoint-meta`,
  /** Per attempt of a job with a checkpoint directory, its nodes (node rank 0's first, comma-separated), as the checkpoint service learnt them. */
  jobCheckpointPlacement: (jobId: string) => `${PREFIX}:job:${jobId}:checkpoint-placement`,
  /**
   * Present (with the same expiry as the job's records) while a finished job's checkpoint
   * records are expiring: a script that writes for the job afterwards gives what it writes the
   * time left, so a record the agent's last pass reports after the final transition expires too.
   */
  jobCheckpointFinished: (jobId: string) => `${PREFIX}:job:${jobId}:checkpoint-finished`,
  instances: `${PREFIX}:instances`,
  healthConfig: `${PREFIX}:config:health`,
  healthState: `${PREFIX}:health:state`,
  healthCursor: `${PREFIX}:health:cursor`,
  healthXids: `${PREFIX}:health:xids`,
  healthOperator: `${PREFIX}:health:operator`,
  healthNodes: `${PREFIX}:health:nodes`,
  healthCluster: `${PREFIX}:health:cluster`,
  audit: `${PREFIX}:audit`,
  storagePool: (target: string, mode: string, part: string) => `${PREFIX}:storage:${target}:${mode}:${part}`,
} as const;

/** Allocation owner string stored per GPU. */
export function allocationOwner(jobId: string, attempt: number, rank: number): string {
  return `${jobId}:${attempt}:${rank}`;
}

export function parseAllocationOwner(owner: string): { jobId: string; attempt: number; rank: number } | undefined {
  const m = /^(.+):(\d+):(\d+)$/.exec(owner);
  return m ? { jobId: m[1]!, attempt: Number(m[2]), rank: Number(m[3]) } : undefined;
}

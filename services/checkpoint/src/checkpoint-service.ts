// gantry.v1.CheckpointService: validate the request, make one store call, translate the
// store's typed errors into gRPC statuses. The rules themselves live in the store's Lua
// scripts, so every caller of the store (later: discovery, recovery) gets the same ones.
import type { CheckpointServiceServer } from '@gantry/proto';
import {
  CheckpointConflictError,
  CheckpointIncompleteError,
  CheckpointNotFoundError,
  CheckpointStateError,
  ShardIndexError,
  type CheckpointStore,
} from '@gantry/store';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, unary, type Logger } from '@gantry/service-kit';
import type { CheckpointMetrics } from './metrics.js';
import type { ResumeVerifier } from './verify.js';
import { validateBegin, validateCommit, validateGet, validateGetLatest, validateList, validateListLastCommits, validateReportShard } from './validation.js';

export const CHECKPOINT_SERVICE_NAME = 'gantry.v1.CheckpointService';

/** Store outcomes a client must handle become statuses; anything else stays an (INTERNAL) error. */
function toStatus(err: unknown): unknown {
  if (err instanceof CheckpointNotFoundError) return notFound(err.message);
  if (err instanceof ShardIndexError) return invalidArgument(err.message);
  if (err instanceof CheckpointIncompleteError || err instanceof CheckpointStateError) return failedPrecondition(err.message);
  if (err instanceof CheckpointConflictError) return alreadyExists(err.message);
  return err;
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toStatus(err);
  }
}

export function checkpointService(store: CheckpointStore, metrics: CheckpointMetrics, log: Logger, verifier?: ResumeVerifier): CheckpointServiceServer {
  return {
    beginCheckpoint: unary(log, 'BeginCheckpoint', async (req) => {
      validateBegin(req);
      const { checkpoint, created } = await call(() => store.begin(req));
      if (created) {
        metrics.begun.inc();
        log.info({ checkpoint: checkpoint.id, job: checkpoint.jobId, step: checkpoint.step, shards: checkpoint.shardCount }, 'checkpoint begun');
      }
      return { checkpoint };
    }),

    reportCheckpointShard: unary(log, 'ReportCheckpointShard', async (req) => {
      validateReportShard(req);
      const { checkpoint, previousBytes } = await call(() => store.reportShard(req.checkpointId, req.shardIndex, req.bytes));
      if (previousBytes === undefined) metrics.shardBytes.inc(req.bytes);
      return { checkpoint };
    }),

    commitCheckpoint: unary(log, 'CommitCheckpoint', async (req) => {
      validateCommit(req);
      const { checkpoint, changed } = await call(() => store.commit(req.checkpointId));
      if (changed) {
        metrics.committed.inc();
        log.info({ checkpoint: checkpoint.id, job: checkpoint.jobId, step: checkpoint.step, bytes: checkpoint.bytes }, 'checkpoint committed');
      }
      return { checkpoint };
    }),

    listCheckpoints: unary(log, 'ListCheckpoints', async (req) => {
      validateList(req);
      return { checkpoints: await call(() => store.list(req.jobId, req.committedOnly)) };
    }),

    getCheckpoint: unary(log, 'GetCheckpoint', async (req) => {
      validateGet(req);
      const checkpoint = await call(() => store.get(req.checkpointId));
      if (!checkpoint) throw notFound(`checkpoint ${req.checkpointId} not found`);
      return { checkpoint };
    }),

    listCheckpointEvents: unary(log, 'ListCheckpointEvents', async (req) => {
      validateList(req);
      return { events: await call(() => store.events(req.jobId)) };
    }),

    // The scheduler's preemption order (work lost since the last commit) for many jobs at once:
    // one HMGET of the service's own last-commit hash, so the scheduler never reads it itself.
    listLastCommits: unary(log, 'ListLastCommits', async (req) => {
      validateListLastCommits(req);
      const times = await store.lastCommitTimes([...new Set(req.jobIds)]);
      const lastCommits: Record<string, Date> = {};
      for (const [job, ms] of times) lastCommits[job] = new Date(ms);
      return { lastCommits };
    }),

    // A job without a committed checkpoint is a normal answer (start from scratch), not an error.
    // A discovered one is re-checked by its agent first (verify.ts).
    getLatestCheckpoint: unary(log, 'GetLatestCheckpoint', async (req) => {
      validateGetLatest(req);
      return { checkpoint: await call(() => (verifier ? verifier.latest(req.jobId) : store.latestCommitted(req.jobId))) };
    }),
  };
}

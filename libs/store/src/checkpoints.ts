// The checkpoint registry in Redis. A checkpoint is begun (WRITING), its shards report their
// sizes, and it is committed once every shard has reported; only committed checkpoints are
// offered for resume. Each mutation is one Lua script that checks the state and writes, so a
// crash at any point leaves the whole change or none of it, and an incomplete checkpoint can
// never look committed.
//
//   gantry:checkpoint:{id}        hash  id, job, attempt, step, path, shards (count), state,
//                                       created, committed | abandoned (ms), reason,
//                                       shard:{index} -> bytes, one field per reported shard
//   gantry:job:{id}:checkpoints   zset  checkpoint ids, score = step
//
// The shard sizes live in the record itself (not a second key) so one script sees and changes
// everything a checkpoint is; the total size is summed on read, so it cannot drift.
import type { Redis } from 'ioredis';
import { Checkpoint, CheckpointState } from '@gantry/proto';
import { keys } from './keys.js';
import { scriptRunner, type ScriptName, type ScriptRunner } from './scripts.js';

/** The bounds the store relies on; the checkpoint service validates requests against them. */
export const MAX_SHARD_COUNT = 65_536;

/**
 * Checkpoint ids are derived from (job, step, attempt), so a retried begin finds the record the
 * first one created. Step and attempt are digits only, so the id parses unambiguously from the
 * right even though job ids may contain '-'.
 */
export function checkpointId(jobId: string, step: number, attempt: number): string {
  return `ck-${jobId}-${step}-${attempt}`;
}

/** What `checkpointId` produces for a valid job id (see SUBJECT_TOKEN in @gantry/bus). */
export const CHECKPOINT_ID_PATTERN = /^ck-[A-Za-z0-9][A-Za-z0-9_-]{0,127}-[0-9]{1,16}-[0-9]{1,10}$/;

export class CheckpointNotFoundError extends Error {
  override name = 'CheckpointNotFoundError';
  constructor(readonly id: string) {
    super(`checkpoint ${id} not found`);
  }
}

/** The checkpoint is not in a state that allows the operation (e.g. a shard report after commit). */
export class CheckpointStateError extends Error {
  override name = 'CheckpointStateError';
  constructor(readonly id: string, readonly state: string, action: string) {
    super(`checkpoint ${id} is ${state}; ${action}`);
  }
}

/** Commit refused: not every shard has reported. `missing` may be cut short; `missingCount` is not. */
export class CheckpointIncompleteError extends Error {
  override name = 'CheckpointIncompleteError';
  constructor(readonly id: string, readonly shardCount: number, readonly reported: number, readonly missing: number[]) {
    const shown = missing.join(', ');
    const more = shardCount - reported - missing.length;
    super(`checkpoint ${id} has ${reported} of ${shardCount} shards; missing ${shown}${more > 0 ? ` and ${more} more` : ''}`);
  }

  get missingCount(): number {
    return this.shardCount - this.reported;
  }
}

export class ShardIndexError extends Error {
  override name = 'ShardIndexError';
  constructor(readonly id: string, readonly shardIndex: number, readonly shardCount: number) {
    super(`shard_index must be less than shard_count ${shardCount} of checkpoint ${id}, got ${shardIndex}`);
  }
}

/** A begin for an existing (job, step, attempt) that disagrees with it on path or shard count. */
export class CheckpointConflictError extends Error {
  override name = 'CheckpointConflictError';
  constructor(readonly existing: Checkpoint, path: string, shardCount: number) {
    super(
      `checkpoint ${existing.id} was begun with path ${existing.path} and shard_count ${existing.shardCount}; ` +
        `this request has path ${path} and shard_count ${shardCount}`,
    );
  }
}

export interface BeginCheckpoint {
  jobId: string;
  attempt: number;
  step: number;
  path: string;
  shardCount: number;
}

export interface BeginResult {
  checkpoint: Checkpoint;
  /** False when an earlier begin created it (a retry). */
  created: boolean;
}

export interface ReportResult {
  checkpoint: Checkpoint;
  /** The bytes this shard had before, when it had reported already. */
  previousBytes: number | undefined;
}

export interface TransitionResult {
  checkpoint: Checkpoint;
  /** False when the checkpoint was already in the target state (a retry). */
  changed: boolean;
}

/** How many missing shard indices an incomplete-commit error lists. */
const MISSING_SHOWN = 32;
/** ids read per round trip while looking for the latest committed checkpoint. */
const LATEST_PAGE = 32;

export class CheckpointStore {
  private readonly scripts: ScriptRunner;

  constructor(private readonly redis: Redis) {
    this.scripts = scriptRunner(redis);
  }

  /** The checkpoint scripts answer with a verdict followed by strings. */
  private async run(name: ScriptName, keyList: string[], args: (string | number)[]): Promise<string[]> {
    return (await this.scripts.run(name, keyList, args)) as string[];
  }

  /** Creates the checkpoint in WRITING, or returns the one an earlier begin of the same (job, step, attempt) created. */
  async begin(b: BeginCheckpoint, now = new Date()): Promise<BeginResult> {
    const id = checkpointId(b.jobId, b.step, b.attempt);
    const [verdict, ...hash] = await this.run('gantryCheckpointBegin', [keys.checkpoint(id), keys.jobCheckpoints(b.jobId)], [
      id, b.jobId, b.attempt, b.step, b.path, b.shardCount, now.getTime(),
    ]);
    const checkpoint = parseRecord(hash);
    if (verdict === 'CONFLICT') throw new CheckpointConflictError(checkpoint, b.path, b.shardCount);
    return { checkpoint, created: verdict === 'CREATED' };
  }

  /** Records one shard's size; a repeat replaces it. Only while WRITING, and only for index < shard count. */
  async reportShard(id: string, shardIndex: number, bytes: number): Promise<ReportResult> {
    const [verdict, a, ...hash] = await this.run('gantryCheckpointReportShard', [keys.checkpoint(id)], [shardIndex, bytes]);
    switch (verdict) {
      case 'OK':
        return { checkpoint: parseRecord(hash), previousBytes: a ? Number(a) : undefined };
      case 'MISSING':
        throw new CheckpointNotFoundError(id);
      case 'STATE':
        throw new CheckpointStateError(id, a ?? '', 'shard reports are accepted only while WRITING');
      case 'RANGE':
        throw new ShardIndexError(id, shardIndex, Number(a));
      default:
        throw unexpected('report-shard', verdict);
    }
  }

  /** Commits once every shard has reported (else CheckpointIncompleteError); committing again is a no-op. */
  async commit(id: string, now = new Date()): Promise<TransitionResult> {
    const [verdict, ...rest] = await this.run('gantryCheckpointCommit', [keys.checkpoint(id), keys.checkpointLastCommit], [now.getTime(), MISSING_SHOWN]);
    switch (verdict) {
      case 'COMMITTED':
      case 'ALREADY':
        return { checkpoint: parseRecord(rest), changed: verdict === 'COMMITTED' };
      case 'MISSING':
        throw new CheckpointNotFoundError(id);
      case 'STATE':
        throw new CheckpointStateError(id, rest[0] ?? '', 'only a WRITING checkpoint can be committed');
      case 'INCOMPLETE': {
        const [count, reported, ...missing] = rest;
        throw new CheckpointIncompleteError(id, Number(count), Number(reported), missing.map(Number));
      }
      default:
        throw unexpected('commit', verdict);
    }
  }

  /**
   * Gives up on a WRITING checkpoint so it is never committed or offered for resume (for
   * recovery, when the attempt that wrote it is gone). Abandoning twice is a no-op.
   */
  async abandon(id: string, reason: string, now = new Date()): Promise<TransitionResult> {
    const [verdict, ...rest] = await this.run('gantryCheckpointAbandon', [keys.checkpoint(id)], [now.getTime(), reason]);
    switch (verdict) {
      case 'ABANDONED':
      case 'ALREADY':
        return { checkpoint: parseRecord(rest), changed: verdict === 'ABANDONED' };
      case 'MISSING':
        throw new CheckpointNotFoundError(id);
      case 'STATE':
        throw new CheckpointStateError(id, rest[0] ?? '', 'only a WRITING checkpoint can be abandoned');
      default:
        throw unexpected('abandon', verdict);
    }
  }

  async get(id: string): Promise<Checkpoint | undefined> {
    const hash = await this.redis.hgetall(keys.checkpoint(id));
    return hash.state === undefined ? undefined : fromHash(hash);
  }

  /** The job's checkpoints by step (then attempt), optionally only the committed ones. */
  async list(jobId: string, committedOnly = false): Promise<Checkpoint[]> {
    const ids = await this.redis.zrange(keys.jobCheckpoints(jobId), 0, -1);
    const all = await this.getMany(ids);
    return all
      .filter((c) => !committedOnly || c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED)
      .sort((a, b) => a.step - b.step || a.attempt - b.attempt || a.id.localeCompare(b.id));
  }

  /**
   * The committed checkpoint with the highest step; of several at that step (written by
   * different attempts), the one committed last. WRITING and ABANDONED ones never count.
   * Reads the index from the highest step down, a page at a time, and stops once the steps
   * fall below the best committed one found, so a long history costs little.
   */
  /** When each job last committed a checkpoint (ms), for many jobs in one round trip. */
  async lastCommitTimes(jobIds: string[]): Promise<Map<string, number>> {
    if (jobIds.length === 0) return new Map();
    const values = await this.redis.hmget(keys.checkpointLastCommit, ...jobIds);
    const out = new Map<string, number>();
    values.forEach((v, i) => { if (v) out.set(jobIds[i]!, Number(v)); });
    return out;
  }

  async latestCommitted(jobId: string): Promise<Checkpoint | undefined> {
    const index = keys.jobCheckpoints(jobId);
    let best: { id: string; step: number; committed: number } | undefined;
    for (let offset = 0; ; offset += LATEST_PAGE) {
      const page = await this.redis.zrevrange(index, offset, offset + LATEST_PAGE - 1, 'WITHSCORES');
      if (page.length === 0) break;
      const entries: { id: string; step: number }[] = [];
      for (let i = 0; i < page.length; i += 2) entries.push({ id: page[i]!, step: Number(page[i + 1]) });
      const pipeline = this.redis.pipeline();
      for (const e of entries) pipeline.hmget(keys.checkpoint(e.id), 'state', 'committed');
      const states = (await pipeline.exec()) ?? [];
      for (const [i, e] of entries.entries()) {
        if (best && e.step < best.step) return this.get(best.id);
        const [err, value] = states[i] ?? [];
        const [state, committed] = (value ?? []) as (string | null)[];
        if (err || state !== 'COMMITTED') continue;
        const at = Number(committed);
        if (!best || at > best.committed) best = { id: e.id, step: e.step, committed: at };
      }
    }
    return best ? this.get(best.id) : undefined;
  }

  private async getMany(ids: string[]): Promise<Checkpoint[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(keys.checkpoint(id));
    const results = (await pipeline.exec()) ?? [];
    return results.flatMap(([err, hash]) => {
      const h = hash as Record<string, string> | null;
      return err || !h || h.state === undefined ? [] : [fromHash(h)];
    });
  }
}

const STATES: Record<string, CheckpointState> = {
  WRITING: CheckpointState.CHECKPOINT_STATE_WRITING,
  COMMITTED: CheckpointState.CHECKPOINT_STATE_COMMITTED,
  ABANDONED: CheckpointState.CHECKPOINT_STATE_ABANDONED,
};

const SHARD_FIELD = 'shard:';

/** A record as a script returns it (HGETALL's flat field/value list). */
function parseRecord(flat: string[]): Checkpoint {
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
  return fromHash(hash);
}

function fromHash(h: Record<string, string>): Checkpoint {
  const shards: number[] = [];
  let bytes = 0;
  for (const [field, value] of Object.entries(h)) {
    if (!field.startsWith(SHARD_FIELD)) continue;
    shards.push(Number(field.slice(SHARD_FIELD.length)));
    bytes += Number(value);
  }
  return Checkpoint.create({
    id: h.id ?? '',
    jobId: h.job ?? '',
    attempt: Number(h.attempt ?? 0),
    step: Number(h.step ?? 0),
    path: h.path ?? '',
    shardCount: Number(h.shards ?? 0),
    shardsReported: shards.sort((a, b) => a - b),
    bytes,
    state: STATES[h.state ?? ''] ?? CheckpointState.CHECKPOINT_STATE_UNSPECIFIED,
    createdAt: h.created ? new Date(Number(h.created)) : undefined,
    committedAt: h.committed ? new Date(Number(h.committed)) : undefined,
  });
}

function unexpected(script: string, verdict: string | undefined): Error {
  return new Error(`unexpected reply from checkpoint-${script}: ${JSON.stringify(verdict)}`);
}

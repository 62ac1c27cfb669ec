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
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Checkpoint, CheckpointEvent, CheckpointFile, CheckpointFormat, CheckpointRetention, CheckpointState } from '@gantry/proto';
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

/**
 * Checkpoints found on disk (discovery, explicit reports) are named by their directory, not by
 * the attempt that saw them: every attempt and every agent restart that sees the same directory
 * reaches the same record. The last part is a 32-bit number from the path's sha256, so ids keep
 * CHECKPOINT_ID_PATTERN.
 */
export function discoveredCheckpointId(jobId: string, step: number, path: string): string {
  const h = createHash('sha256').update(path).digest().readUInt32BE(0);
  return `ck-${jobId}-${step}-${h}`;
}

/** What `checkpointId` produces for a valid job id (see SUBJECT_TOKEN in @gantry/bus). */
export const CHECKPOINT_ID_PATTERN = /^ck-[A-Za-z0-9][A-Za-z0-9_-]{0,127}-[0-9]{1,16}-[0-9]{1,10}$/;

/** The job id inside a checkpoint id (either kind above); '' when the id has not their shape. */
export function checkpointJobId(id: string): string {
  return CHECKPOINT_ID_PATTERN.test(id) ? id.slice(3).replace(/-[0-9]+-[0-9]+$/, '') : '';
}

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

/** What an agent saw of one checkpoint directory (CheckpointReport, validated). */
export interface ObservedCheckpoint {
  jobId: string;
  attempt: number;
  node: string;
  path: string;
  step: number;
  /** COMPLETE | INCOMPLETE | CORRUPT (libs/checkpoint-layouts), GONE when the directory vanished. */
  status: 'COMPLETE' | 'INCOMPLETE' | 'CORRUPT' | 'GONE';
  reason: string;
  files: CheckpointFile[];
  bytes: number;
  format: CheckpointFormat;
  variant: string;
  source: string;
  attemptEnded: boolean;
}

export interface ObserveResult {
  checkpoint: Checkpoint | undefined;
  /** The state before ('' = new record); undefined when the report was ignored. */
  previous: CheckpointState | undefined;
  changed: boolean;
}

/** A job's checkpoint settings, as the latest report carried them. */
export interface CheckpointMeta {
  dir: string;
  node: string;
  /** The job's own policy (JobSpec.checkpoint.retention); undefined: its tenant's applies. */
  retention: CheckpointRetention | undefined;
  /** The job's tenant, from its job events (setTenant); '' until one was seen. */
  tenant?: string;
}

/** How many events a job keeps (newest first). */
export const CHECKPOINT_EVENTS_KEPT = 1000;

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
    const [verdict, ...hash] = await this.run('gantryCheckpointBegin', [keys.checkpoint(id), keys.jobCheckpoints(b.jobId), keys.jobCheckpointFinished(b.jobId)], [
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
    const [verdict, ...rest] = await this.run('gantryCheckpointCommit', [keys.checkpoint(id), keys.checkpointLastCommit, keys.jobCheckpointFinished(checkpointJobId(id))], [now.getTime(), MISSING_SHOWN]);
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

  /**
   * Records what an agent saw of one checkpoint directory and moves its state (see
   * lua/checkpoint-observe.lua). Idempotent: the same report twice changes nothing.
   */
  async observe(o: ObservedCheckpoint, now = new Date()): Promise<ObserveResult> {
    const id = discoveredCheckpointId(o.jobId, o.step, o.path);
    const files = JSON.stringify(o.files.map((f) => (f.sha256 ? [f.path, f.size, f.sha256] : [f.path, f.size])));
    const [verdict, previous, ...hash] = await this.run('gantryCheckpointObserve', [keys.checkpoint(id), keys.jobCheckpoints(o.jobId), keys.checkpointLastCommit, keys.jobCheckpointEvents(o.jobId), keys.jobCheckpointFinished(o.jobId)], [
      id, o.jobId, o.attempt, o.step, o.path, o.status, o.reason, files, o.bytes, o.format, o.variant, o.node, now.getTime(), o.source, CHECKPOINT_EVENTS_KEPT, o.attemptEnded ? '1' : '0',
    ]);
    if (verdict === 'IGNORED') return { checkpoint: hash.length ? parseRecord(hash) : undefined, previous: undefined, changed: false };
    if (verdict !== 'CHANGED' && verdict !== 'SAME') throw unexpected('observe', verdict);
    return { checkpoint: parseRecord(hash), previous: previous ? (STATES[previous] ?? CheckpointState.CHECKPOINT_STATE_UNSPECIFIED) : CheckpointState.CHECKPOINT_STATE_UNSPECIFIED, changed: verdict === 'CHANGED' };
  }

  /** Marks a checkpoint DELETED (its agent removed it) and records the event; twice is a no-op. */
  async markDeleted(id: string, reason: string, now = new Date()): Promise<TransitionResult> {
    const rec = await this.redis.hget(keys.checkpoint(id), 'job');
    if (rec === null) throw new CheckpointNotFoundError(id);
    const [verdict, ...rest] = await this.run('gantryCheckpointDelete', [keys.checkpoint(id), keys.jobCheckpointEvents(rec), keys.jobCheckpointFinished(rec)], [now.getTime(), reason, CHECKPOINT_EVENTS_KEPT]);
    if (verdict === 'MISSING') throw new CheckpointNotFoundError(id);
    if (verdict !== 'DELETED' && verdict !== 'ALREADY') throw unexpected('delete', verdict);
    return { checkpoint: parseRecord(rest), changed: verdict === 'DELETED' };
  }

  /** Appends an event that changes no state (a retention dry run, a refused deletion). */
  async recordEvent(e: CheckpointEvent): Promise<void> {
    const json = JSON.stringify({ checkpoint: e.checkpointId, job: e.jobId, kind: e.kind, path: e.path, message: e.message, time: (e.time ?? new Date()).getTime() });
    await this.run('gantryCheckpointEvent', [keys.jobCheckpointEvents(e.jobId), keys.jobCheckpointFinished(e.jobId)], [json, CHECKPOINT_EVENTS_KEPT]);
  }

  /** Sets a field once (e.g. that a dry run was recorded); true when this call set it. */
  async flagOnce(id: string, field: string, value: string): Promise<boolean> {
    return (await this.redis.hsetnx(keys.checkpoint(id), field, value)) === 1;
  }

  async clearFlag(id: string, field: string): Promise<void> {
    await this.redis.hdel(keys.checkpoint(id), field);
  }

  async events(jobId: string): Promise<CheckpointEvent[]> {
    const raw = await this.redis.lrange(keys.jobCheckpointEvents(jobId), 0, -1);
    return raw.flatMap((r) => {
      try {
        const e = JSON.parse(r) as { checkpoint: string; job: string; kind: string; path: string; message: string; time: number };
        return [CheckpointEvent.create({ checkpointId: e.checkpoint, jobId: e.job, kind: e.kind, path: e.path ?? '', message: e.message ?? '', time: new Date(e.time) })];
      } catch {
        return [];
      }
    });
  }

  async setMeta(jobId: string, meta: CheckpointMeta): Promise<void> {
    await this.hset(jobId, keys.jobCheckpointMeta(jobId), [
      'dir', meta.dir, 'node', meta.node, 'retention', meta.retention ? JSON.stringify(CheckpointRetention.toJSON(meta.retention)) : '',
    ]);
  }

  /**
   * Records where attempts of the job run (node rank 0's node first): only those nodes may
   * report its checkpoints. An attempt's placement never changes, so writing it again is harmless.
   */
  async setPlacements(jobId: string, attempts: { attempt: number; nodes: string[] }[]): Promise<void> {
    const fields = attempts.filter((a) => a.nodes.length > 0).flatMap((a) => [String(a.attempt), a.nodes.join(',')]);
    if (fields.length > 0) await this.hset(jobId, keys.jobCheckpointPlacement(jobId), fields);
  }

  /** The attempt's nodes, node rank 0's first; undefined when not recorded. */
  async placement(jobId: string, attempt: number): Promise<string[] | undefined> {
    const v = await this.redis.hget(keys.jobCheckpointPlacement(jobId), String(attempt));
    return v ? v.split(',') : undefined;
  }

  /** Records the job's tenant (its tenant's retention policy applies unless the job has one). */
  async setTenant(jobId: string, tenant: string): Promise<void> {
    await this.hset(jobId, keys.jobCheckpointMeta(jobId), ['tenant', tenant]);
  }

  /** HSET on one of the job's hashes that, once the job finished, expires with its records. */
  private async hset(jobId: string, key: string, fields: string[]): Promise<void> {
    await this.run('gantryCheckpointHset', [key, keys.jobCheckpointFinished(jobId)], fields);
  }

  async meta(jobId: string): Promise<CheckpointMeta | undefined> {
    const h = await this.redis.hgetall(keys.jobCheckpointMeta(jobId));
    if (!h.dir) return undefined;
    let retention: CheckpointRetention | undefined;
    try {
      retention = h.retention ? CheckpointRetention.fromJSON(JSON.parse(h.retention)) : undefined;
    } catch {
      retention = undefined;
    }
    return { dir: h.dir, node: h.node ?? '', retention, tenant: h.tenant ?? '' };
  }

  /**
   * A finished job's checkpoint records expire after `ttlSeconds` (its last commit time goes
   * at once); a job that runs again (retry) calls `keepJob` to lift the expiry.
   *
   * One script writes the finished marker and sets the expiries: a script that writes for the
   * job after it gives what it writes the time the marker has left (and does not bring back
   * the last commit time), and one that ran before it added its record to the index this one
   * reads. So no record, whenever the agent reports it, is left without an expiry.
   */
  async expireJob(jobId: string, ttlSeconds: number): Promise<number> {
    return (await this.finishJob(jobId, ttlSeconds, Number.MAX_SAFE_INTEGER)).expired;
  }

  /**
   * expireJob for a job that reached a final state after `attempt`, in one round trip (it runs
   * for every job that ends, most with no checkpoint at all): also returns the ids of its
   * WRITING checkpoints of that attempt or earlier, which the caller abandons (their expiry stays).
   */
  async finishJob(jobId: string, ttlSeconds: number, attempt: number): Promise<{ expired: number; writing: string[] }> {
    const [expired, ...writing] = (await this.scripts.run('gantryCheckpointFinishJob', [
      keys.jobCheckpointFinished(jobId), keys.jobCheckpoints(jobId), keys.jobCheckpointEvents(jobId), keys.jobCheckpointMeta(jobId),
      keys.jobCheckpointPlacement(jobId), keys.checkpointLastCommit,
    ], [ttlSeconds, keys.checkpoint(''), attempt, jobId])) as [number, ...string[]];
    return { expired: Number(expired), writing };
  }

  /** Lifts the expiry; the marker goes first, so a record written meanwhile is in the index read next. */
  async keepJob(jobId: string): Promise<void> {
    await this.redis.del(keys.jobCheckpointFinished(jobId));
    const ids = await this.redis.zrange(keys.jobCheckpoints(jobId), 0, -1);
    const m = this.redis.multi();
    for (const id of ids) m.persist(keys.checkpoint(id));
    for (const k of [keys.jobCheckpoints(jobId), keys.jobCheckpointEvents(jobId), keys.jobCheckpointMeta(jobId), keys.jobCheckpointPlacement(jobId)]) m.persist(k);
    await m.exec();
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
  CORRUPT: CheckpointState.CHECKPOINT_STATE_CORRUPT,
  DELETED: CheckpointState.CHECKPOINT_STATE_DELETED,
};

/** The manifest as stored: [path, size] or [path, size, sha256] per file. */
function parseFiles(json: string | undefined): CheckpointFile[] {
  if (!json) return [];
  try {
    const rows = JSON.parse(json) as [string, number, string?][];
    return rows.map(([path, size, sha256]) => CheckpointFile.create({ path, size, sha256: sha256 ?? '' }));
  } catch {
    return [];
  }
}

const ms = (v: string | undefined) => (v ? new Date(Number(v)) : undefined);

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
    bytes: bytes || Number(h.bytes ?? 0),
    state: STATES[h.state ?? ''] ?? CheckpointState.CHECKPOINT_STATE_UNSPECIFIED,
    createdAt: ms(h.created),
    committedAt: ms(h.committed),
    format: Number(h.format ?? 0) as CheckpointFormat,
    reason: h.reason ?? '',
    files: parseFiles(h.files),
    source: h.source ?? 'client',
    node: h.node ?? '',
    variant: h.variant ?? '',
    // When it entered its current state (retention counts grace periods from it).
    updatedAt: ms(h.since ?? h.committed ?? h.created),
  });
}

function unexpected(script: string, verdict: string | undefined): Error {
  return new Error(`unexpected reply from checkpoint-${script}: ${JSON.stringify(verdict)}`);
}

// Typed access to jobs in Redis. Every write is one Lua script (compare-and-set on the job's
// revision, the GPU claims/releases it implies, and the outbox event), so a crash at any
// point leaves either the whole transition or none of it.
import { createHash } from 'node:crypto';
import { ReplyError, type Redis } from 'ioredis';
import { Attempt, Job, JobSpec, JobState, canTransitionJob, jobStateName, parseJobState } from '@gantry/proto';
import { subjects } from '@gantry/bus';
import { keys, PREFIX } from './keys.js';
import { READ_CHUNK, chunked } from './chunks.js';
import { scriptRunner, type ScriptCall, type ScriptRunner } from './scripts.js';
import { jobEvent } from './events.js';
import { changesHead, changesSince, type Changes } from './change-stream.js';
import { AllocationConflictError, FencedError, IdempotencyConflictError, StaleWriteError } from './errors.js';

export interface JobRecord {
  job: Job;
  rev: number;
}

export interface GpuRef {
  node: string;
  gpu: number;
  /** allocationOwner(jobId, attempt, rank) */
  owner: string;
}

/** A rendezvous port claimed on a node for node rank 0 of an attempt. */
export interface PortRef {
  node: string;
  port: number;
  /** allocationOwner(jobId, attempt, 0): released with that owner's GPUs. */
  owner: string;
}

export interface JobCommit {
  prev: JobRecord;
  next: Job;
  /** Why; goes into the event and, on a state change, Job.reason. */
  reason: string;
  /** Leader fencing epoch; omitted for user-intent writes that any replica may make. */
  epoch?: number;
  claims?: GpuRef[];
  /** Releasing an owner's GPUs also frees the ports it holds on that node. */
  releases?: GpuRef[];
  portClaims?: PortRef[];
  now?: Date;
}

export class InvalidTransitionError extends Error {
  override name = 'InvalidTransitionError';
}

export interface ListJobsQuery {
  states?: JobState[];
  tenant?: string;
  pageSize: number;
  pageToken?: string;
}

const IDEMPOTENCY_TTL_SEC = 7 * 24 * 3600;
/** 2: per-tenant and per-tenant-state sets beside the per-state ones. */
const JOB_INDEX_VERSION = 2;
/**
 * Commits per commit-jobs.lua call in commitMany: at ~50 us of Redis each, a call holds Redis
 * for a few milliseconds at most.
 */
const COMMITS_PER_CALL = 32;

const tenantOf = (job: Job): string => job.spec?.tenant ?? '';

/** Attempts a job record keeps when the store is not told otherwise. */
export const DEFAULT_ATTEMPTS_KEPT = 16;
/**
 * The fewest attempts a record may keep: the current one and the one before it, whose failure
 * the current attempt recovers from (recovery times its duration from that failure).
 */
export const MIN_ATTEMPTS_KEPT = 2;

export interface JobStoreOptions {
  /**
   * Attempts kept in a job's record (DEFAULT_ATTEMPTS_KEPT when absent): a commit that leaves
   * more drops the oldest and counts them in Job.attemptsCompacted, so a job that recovers
   * many times keeps a bounded record. The same write appends the dropped ones to the job's
   * attempts archive (archivedAttempts; its newest ATTEMPTS_ARCHIVE_CAP), and the job events
   * published before hold them too.
   */
  attemptsKept?: number;
  /**
   * Called after a write that added an outbox event has committed (a submission, a
   * transition): the process that relays the outbox can publish it now instead of at its
   * next poll.
   */
  onEvent?: () => void;
  /**
   * Called with each record a commit of this store wrote (its new revision): the writer's
   * copy of the jobs (the scheduler's JobCache) takes it instead of reading it back.
   */
  onCommitted?: (rec: JobRecord) => void;
}

/** Checks an attempts-kept setting: an integer of at least MIN_ATTEMPTS_KEPT. */
export function validAttemptsKept(n: number): number {
  if (!Number.isInteger(n) || n < MIN_ATTEMPTS_KEPT) {
    throw new RangeError(`attempts kept per job must be an integer of at least ${MIN_ATTEMPTS_KEPT}, got ${n}`);
  }
  return n;
}

/**
 * Compacted attempts a job's archive keeps (its newest): generous, so that only a chain far
 * longer than any recovery budget loses some, while the archive of a job that retries forever
 * stays bounded.
 */
export const ATTEMPTS_ARCHIVE_CAP = 1000;

/**
 * The job with only its newest `keep` attempts (by number), and the dropped ones, oldest
 * first; they are added to attemptsCompacted, so attempts[0] is attempt attemptsCompacted + 1.
 * The job itself when nothing is dropped.
 */
export function splitAttempts(job: Job, keep: number): { job: Job; dropped: Attempt[] } {
  if (job.attempts.length <= keep) return { job, dropped: [] };
  const byNumber = [...job.attempts].sort((a, b) => a.number - b.number);
  const n = byNumber.length - keep;
  return { job: { ...job, attempts: byNumber.slice(n), attemptsCompacted: job.attemptsCompacted + n }, dropped: byNumber.slice(0, n) };
}

/** JSON with object keys sorted, so equal specs hash equally whatever order their maps were built in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** What an idempotency key remembers of the spec it created a job with. */
export function specHash(spec: JobSpec | undefined): string {
  return createHash('sha256').update(canonical(JobSpec.toJSON(spec ?? JobSpec.create()))).digest('hex').slice(0, 32);
}

/** The submit script's reply: {1, id} created, {0, id} the key's job, {2, id} the key's job with another spec. */
type SubmitReply = [number, string];

export type SubmitManyOutcome = { created: boolean; job: Job } | { error: Error };

/** The submit script's call for a job, and the record it stores when it creates the job. */
function submitCall(job: Job, idempotencyKey: string): { stored: Job; call: ScriptCall } {
  const created = job.createdAt ?? new Date();
  const stored = Job.create({ ...job, state: JobState.JOB_STATE_PENDING, revision: 1, createdAt: created, updatedAt: created });
  const event = jobEvent(subjects.jobEvent(job.id), JobState.JOB_STATE_UNSPECIFIED, stored, 'submitted', created);
  const idemKey = idempotencyKey ? keys.idempotency(job.spec?.tenant ?? '', idempotencyKey) : '';
  return {
    stored,
    call: {
      name: 'gantrySubmitJob',
      keys: [idemKey, keys.job(job.id), keys.jobsAll, keys.jobsInState('PENDING'), keys.outbox, keys.jobsOfTenant(tenantOf(job)), keys.jobsOfTenantInState(tenantOf(job), 'PENDING'), keys.jobChanges],
      args: [job.id, JSON.stringify(Job.toJSON(stored)), created.getTime(), job.spec?.tenant ?? '', event.subject, event.id, event.data, IDEMPOTENCY_TTL_SEC, specHash(job.spec)],
    },
  };
}

export class JobStore {
  private readonly scripts: ScriptRunner;
  private readonly attemptsKept: number;
  private readonly onEvent: () => void;
  private readonly onCommitted: ((rec: JobRecord) => void) | undefined;

  constructor(private readonly redis: Redis, options: JobStoreOptions = {}) {
    this.scripts = scriptRunner(redis);
    this.attemptsKept = validAttemptsKept(options.attemptsKept ?? DEFAULT_ATTEMPTS_KEPT);
    this.onEvent = options.onEvent ?? (() => undefined);
    this.onCommitted = options.onCommitted;
  }

  /**
   * Creates the job in PENDING, or returns the job an earlier call with the same key and the
   * same spec created; the same key with another spec throws IdempotencyConflictError.
   */
  async submit(job: Job, idempotencyKey: string): Promise<{ created: boolean; job: Job }> {
    const { stored, call } = submitCall(job, idempotencyKey);
    const res = (await this.scripts.run(call.name, call.keys, call.args)) as SubmitReply;
    if (res[0] === 1) {
      this.onEvent();
      return { created: true, job: stored };
    }
    if (res[0] === 2) throw new IdempotencyConflictError(idempotencyKey, res[1]);
    const existing = await this.get(res[1]);
    if (!existing) throw new Error(`idempotency key ${idempotencyKey} names job ${res[1]}, which no longer exists`);
    return { created: false, job: existing.job };
  }

  /**
   * submit() for many jobs: one pipeline of the same script (each job still created atomically
   * with its idempotency key), one replica wait, then one read of the jobs that keys already
   * named. Each item's outcome in order; an item's error (IdempotencyConflictError, or a
   * Redis error for that script) does not fail the others. A later item with an earlier
   * item's key (and tenant) gets that item's job back, as a retried submit would.
   */
  async submitMany(items: readonly { job: Job; idempotencyKey: string }[]): Promise<SubmitManyOutcome[]> {
    const prepared = items.map((it) => submitCall(it.job, it.idempotencyKey));
    const replies = await this.scripts.runMany(prepared.map((p) => p.call));
    const existingIds = [...new Set(replies.flatMap((r) => (r.ok && (r.value as SubmitReply)[0] === 0 ? [(r.value as SubmitReply)[1]] : [])))];
    const existing = new Map((await this.getMany(existingIds)).map((rec) => [rec.job.id, rec.job]));
    const out = replies.map((r, i): SubmitManyOutcome => {
      if (!r.ok) return { error: r.error };
      const [code, id] = r.value as SubmitReply;
      const key = items[i]!.idempotencyKey;
      if (code === 1) return { created: true, job: prepared[i]!.stored };
      if (code === 2) return { error: new IdempotencyConflictError(key, id) };
      const job = existing.get(id);
      return job ? { created: false, job } : { error: new Error(`idempotency key ${key} names job ${id}, which no longer exists`) };
    });
    if (out.some((o) => 'created' in o && o.created)) this.onEvent();
    return out;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const [rev, json] = await this.redis.hmget(keys.job(id), 'rev', 'job');
    if (!rev || !json) return undefined;
    return { rev: Number(rev), job: Job.fromJSON(JSON.parse(json)) };
  }

  async getMany(ids: string[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(keys.job(id), 'rev', 'job');
    const results = (await pipeline.exec()) ?? [];
    const out: JobRecord[] = [];
    for (const [err, value] of results) {
      const [rev, json] = (value ?? []) as [string | null, string | null];
      if (err || rev === null || json === null) continue;
      out.push({ rev: Number(rev), job: Job.fromJSON(JSON.parse(json)) });
    }
    return out;
  }

  /** The id of the newest entry of the job change stream ('0-0' when empty): where a reader that loads everything now starts. */
  changesHead(): Promise<string> {
    return changesHead(this.redis, keys.jobChanges);
  }

  /**
   * The ids of jobs written after `cursor`, and the new cursor; `gap` when the capped stream no
   * longer holds every entry after the cursor (the reader must then reload everything).
   */
  changesSince(cursor: string): Promise<Changes> {
    return changesSince(this.redis, keys.jobChanges, cursor);
  }

  /** Each job's revision (undefined for a job that does not exist), in one pipelined round trip. */
  async revisions(ids: readonly string[]): Promise<(number | undefined)[]> {
    if (ids.length === 0) return [];
    // Script calls of READ_CHUNK jobs each in one pipeline, instead of a command per job (the client's cost per command dominated).
    const replies = await this.scripts.runMany(chunked(ids, READ_CHUNK).map((c) => ({ name: 'gantryJobRevisions', keys: c.map((id) => keys.job(id)), args: [] })));
    const out: (number | undefined)[] = [];
    for (const r of replies) {
      if (!r.ok) throw r.error;
      for (const rev of r.value as (string | null)[]) out.push(rev === null || rev === undefined ? undefined : Number(rev));
    }
    return out;
  }

  /**
   * The attempts compacted out of each job's record that its archive keeps (the newest
   * ATTEMPTS_ARCHIVE_CAP), oldest first, in one pipelined round trip; a job without any is
   * absent. Read only for jobs with attemptsCompacted > 0: the others have no archive.
   */
  async archivedAttempts(ids: readonly string[]): Promise<Map<string, Attempt[]>> {
    const out = new Map<string, Attempt[]>();
    if (ids.length === 0) return out;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.lrange(keys.jobAttemptsArchive(id), 0, -1);
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([err, raw], i) => {
      if (err) throw err;
      const list = raw as string[];
      if (list.length > 0) out.set(ids[i]!, list.map((json) => Attempt.fromJSON(JSON.parse(json))));
    });
    return out;
  }

  /**
   * Where each job stands in the state indexes: its state and its creation time (the index
   * sets' score; undefined for a job written before creation times were kept, which only a
   * read of the index can place), with its revision, in one pipelined round trip; undefined
   * for a job that does not exist.
   */
  async indexEntries(ids: readonly string[]): Promise<({ state: JobState; created: number | undefined; rev: number } | undefined)[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(keys.job(id), 'state', 'created', 'rev');
    return ((await pipeline.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      const [name, created, rev] = v as (string | null)[];
      const state = name ? parseJobState(name) : undefined;
      return state === undefined ? undefined : { state, created: created ? Number(created) : undefined, rev: Number(rev) };
    });
  }

  /** A state's index set, oldest first: each job's id and creation time (its score). */
  async indexOfState(state: JobState): Promise<{ id: string; created: number }[]> {
    const flat = await this.redis.zrange(keys.jobsInState(jobStateName(state)), 0, -1, 'WITHSCORES');
    const out: { id: string; created: number }[] = new Array(flat.length / 2);
    for (let i = 0; i < flat.length; i += 2) out[i / 2] = { id: flat[i]!, created: Number(flat[i + 1]) };
    return out;
  }

  /** Job ids in a state, oldest first. */
  async idsInState(state: JobState): Promise<string[]> {
    return this.redis.zrange(keys.jobsInState(jobStateName(state)), 0, -1);
  }

  /**
   * Newest first; the page token is an opaque cursor (creation time and id of the last job).
   * Reads only the index sets that match (per state, per tenant, or both) and then exactly the
   * jobs of the page, in one pipelined round trip per batch: the cost of a page does not grow
   * with the number of jobs kept.
   */
  async list(q: ListJobsQuery): Promise<{ jobs: Job[]; nextPageToken: string }> {
    const states = q.states && q.states.length > 0 ? q.states.map((s) => jobStateName(s)) : undefined;
    const sets = q.tenant !== undefined && q.tenant !== ''
      ? (states ? states.map((s) => keys.jobsOfTenantInState(q.tenant!, s)) : [keys.jobsOfTenant(q.tenant)])
      : (states ? states.map((s) => keys.jobsInState(s)) : [keys.jobsAll]);
    let cursor = decodeCursor(q.pageToken);
    const jobs: Job[] = [];
    for (;;) {
      const want = q.pageSize - jobs.length;
      // From each set: the jobs created in the cursor's millisecond (ties, ordered by id as the
      // cursor is) and the newest `want` created before it; merged below.
      const pipeline = this.redis.pipeline();
      for (const set of sets) {
        if (cursor) pipeline.zrevrangebyscore(set, cursor.score, cursor.score, 'WITHSCORES');
        pipeline.zrevrangebyscore(set, cursor ? `(${cursor.score}` : '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, want);
      }
      const candidates: { id: string; score: number }[] = [];
      for (const [err, raw] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        const r = raw as string[];
        for (let i = 0; i < r.length; i += 2) candidates.push({ id: r[i]!, score: Number(r[i + 1]) });
      }
      const fresh = candidates
        .filter((c) => !cursor || c.score < cursor.score || (c.score === cursor.score && c.id < cursor.id))
        .sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .slice(0, want);
      if (fresh.length === 0) return { jobs, nextPageToken: '' };
      const byId = new Map((await this.getMany(fresh.map((c) => c.id))).map((r) => [r.job.id, r.job]));
      for (const c of fresh) {
        cursor = c;
        const job = byId.get(c.id);
        // A job removed meanwhile, or (defence in depth) one of another tenant, is skipped.
        if (!job || (q.tenant && job.spec?.tenant !== q.tenant)) continue;
        jobs.push(job);
      }
      if (jobs.length === q.pageSize) return { jobs, nextPageToken: encodeCursor(cursor!) };
    }
  }

  /**
   * Indexes jobs written before the per-tenant sets existed (idempotent; each job in one atomic
   * step). Runs once per store version, at a scheduler's start; returns how many were indexed.
   */
  async ensureIndexes(): Promise<number> {
    if (Number(await this.redis.get(keys.jobIndexVersion)) >= JOB_INDEX_VERSION) return 0;
    let indexed = 0;
    let cursor = '0';
    do {
      const [next, raw] = await this.redis.zscan(keys.jobsAll, cursor, 'COUNT', 1000);
      cursor = next;
      const ids = raw.filter((_, i) => i % 2 === 0);
      const results = await Promise.all(ids.map((id) => this.scripts.run('gantryIndexJob', [keys.job(id)], [id, PREFIX])));
      indexed += results.filter((r) => r === 1).length;
    } while (cursor !== '0');
    await this.redis.set(keys.jobIndexVersion, JOB_INDEX_VERSION);
    return indexed;
  }

  /** Applies one validated change of a job; throws StaleWriteError, FencedError or AllocationConflictError. */
  async commit(c: JobCommit): Promise<JobRecord> {
    const w = this.prepareCommit(c);
    const rec = commitReply(w.next, c, await this.scripts.run('gantryCommitJob', w.keys, w.args));
    if (w.event) this.onEvent();
    this.onCommitted?.(rec);
    return rec;
  }

  /**
   * Applies several jobs' changes in one round trip: each is still its own validated
   * compare-and-set (one may fail while the others apply), a few dozen to a script call, the
   * calls written together in one pipeline, with one replica wait for the lot. The outcome of
   * each, in order: its new record, or the error commit() would have thrown for it. A failed
   * replica wait (ReplicationError) or a lost connection rejects the whole call: any of the
   * writes may or may not stand.
   */
  async commitMany(commits: readonly JobCommit[]): Promise<PromiseSettledResult<JobRecord>[]> {
    const out: PromiseSettledResult<JobRecord>[] = new Array(commits.length);
    const writes: { i: number; w: PreparedCommit }[] = [];
    commits.forEach((c, i) => {
      try {
        writes.push({ i, w: this.prepareCommit(c) });
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    });
    // COMMITS_PER_CALL commits per script call (commit-jobs.lua), each still its own script's
    // work and reply: the client's and Redis's cost per command was a large share of a commit.
    const calls: ScriptCall[] = [];
    for (let start = 0; start < writes.length; start += COMMITS_PER_CALL) {
      const keyList: string[] = [];
      const args: (string | number | Buffer)[] = [''];
      let sizes = '';
      for (let k = start; k < Math.min(start + COMMITS_PER_CALL, writes.length); k++) {
        const w = writes[k]!.w;
        sizes += `${w.keys.length},${w.args.length},`;
        for (const key of w.keys) keyList.push(key);
        for (const arg of w.args) args.push(arg);
      }
      args[0] = sizes;
      calls.push({ name: 'gantryCommitJobs', keys: keyList, args });
    }
    const replies = await this.scripts.runMany(calls);
    let events = false;
    writes.forEach(({ i, w }, k) => {
      const call = replies[Math.floor(k / COMMITS_PER_CALL)]!;
      try {
        if (!call.ok) throw call.error;
        const reply = (call.value as unknown[])[k % COMMITS_PER_CALL] as string[] | undefined;
        if (reply?.[0] === 'ERR') throw new ReplyError(reply[1] ?? 'commit-job failed');
        const rec = commitReply(w.next, commits[i]!, reply);
        out[i] = { status: 'fulfilled', value: rec };
        events ||= w.event;
        this.onCommitted?.(rec);
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    });
    if (events) this.onEvent();
    return out;
  }

  /** The commit script's keys and arguments for one change (throws InvalidTransitionError). */
  private prepareCommit(c: JobCommit): PreparedCommit {
    const from = c.prev.job.state;
    const to = c.next.state;
    if (from !== to && !canTransitionJob(from, to)) {
      throw new InvalidTransitionError(`job ${c.prev.job.id}: ${jobStateName(from)} -> ${jobStateName(to)} is not a valid transition`);
    }
    const now = c.now ?? new Date();
    // Compacted in the same write that adds an attempt: the record never holds more than
    // attemptsKept, and what it drops goes to the archive in that write.
    const { job: next, dropped } = splitAttempts(
      Job.create({ ...c.next, revision: c.prev.rev + 1, updatedAt: now, reason: from !== to ? c.reason : c.next.reason }),
      this.attemptsKept,
    );
    const event = from !== to ? jobEvent(subjects.jobEvent(next.id), from, next, c.reason, now) : undefined;
    const releases = c.releases ?? [];
    const claims = c.claims ?? [];
    const portClaims = c.portClaims ?? [];
    const tenant = tenantOf(c.prev.job);
    const keyList = [
      keys.job(next.id), keys.outbox, keys.leaderEpoch, keys.jobsInState(jobStateName(from)), keys.jobsInState(jobStateName(to)),
      keys.jobsOfTenantInState(tenant, jobStateName(from)), keys.jobsOfTenantInState(tenant, jobStateName(to)), keys.jobChanges,
      keys.jobAttemptsArchive(next.id), keys.nodeChanges,
    ];
    const args: (string | number | Buffer)[] = [
      // The record as bytes: among the event's bytes, a string this long cost the client two
      // more passes over it and a copy.
      String(c.prev.rev), jobStateName(from), jobStateName(to), Buffer.from(JSON.stringify(Job.toJSON(next))),
      c.epoch === undefined ? '' : String(c.epoch),
      event?.subject ?? '', event?.id ?? '', event?.data ?? '', next.id, releases.length, 0, portClaims.length,
      dropped.length, ATTEMPTS_ARCHIVE_CAP, c.prev.job.createdAt ? c.prev.job.createdAt.getTime() : '', 0,
    ];
    for (const r of releases) { keyList.push(keys.nodeAlloc(r.node), keys.nodePorts(r.node)); args.push(r.gpu, r.owner); }
    // Claims go by owner and node (a rank's GPUs), each group's keys once: a fraction of the
    // arguments of one pair of keys per GPU, and one node state check per rank.
    const groups = new Map<string, { node: string; owner: string; gpus: number[] }>();
    for (const cl of claims) {
      const id = `${cl.node}\0${cl.owner}`;
      const g = groups.get(id) ?? { node: cl.node, owner: cl.owner, gpus: [] };
      g.gpus.push(cl.gpu);
      groups.set(id, g);
    }
    args[10] = groups.size;
    for (const g of groups.values()) { keyList.push(keys.nodeAlloc(g.node), keys.node(g.node)); args.push(g.owner, g.gpus.join(',')); }
    for (const p of portClaims) { keyList.push(keys.nodePorts(p.node)); args.push(p.port, p.owner); }
    for (const a of dropped) args.push(JSON.stringify(Attempt.toJSON(a)));
    // The nodes whose allocations change, for the node change stream.
    const changedNodes = new Set<string>();
    for (const r of releases) changedNodes.add(r.node);
    for (const g of groups.values()) changedNodes.add(g.node);
    args[15] = changedNodes.size;
    for (const n of changedNodes) args.push(n);
    return { next, keys: keyList, args, event: event !== undefined };
  }
}

interface PreparedCommit {
  next: Job;
  /** Whether the write adds an outbox event (a state change). */
  event: boolean;
  keys: string[];
  args: (string | number | Buffer)[];
}

/** The commit script's reply as the new record, or the error it stands for. */
function commitReply(next: Job, c: JobCommit, reply: unknown): JobRecord {
  const res = reply as string[];
  switch (res[0]) {
    case 'OK':
      return { job: next, rev: Number(res[1]) };
    case 'FENCED':
      throw new FencedError(String(c.epoch));
    case 'STALE':
      throw new StaleWriteError(keys.job(next.id), Number(res[1]), res[2] ?? '');
    case 'CONFLICT':
      throw new AllocationConflictError(`${res[1]} gpu ${res[2]} held by ${res[3]}`);
    case 'NODE_NOT_READY':
      throw new AllocationConflictError(`${res[1]} is ${res[2] || 'unknown'}, not READY`);
    case 'PORT_CONFLICT':
      throw new AllocationConflictError(`${res[1]} port ${res[2]} held by ${res[3]}`);
    default:
      throw new Error(`unexpected reply from commit-job: ${JSON.stringify(res)}`);
  }
}

function encodeCursor(c: { score: number; id: string }): string {
  return Buffer.from(`${c.score}:${c.id}`).toString('base64url');
}

export class InvalidPageTokenError extends Error {
  override name = 'InvalidPageTokenError';
}

function decodeCursor(token: string | undefined): { score: number; id: string } | undefined {
  if (!token) return undefined;
  const m = /^(\d+):(.+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  if (!m) throw new InvalidPageTokenError(`page_token ${JSON.stringify(token)} is not a token this server issued`);
  return { score: Number(m[1]), id: m[2]! };
}

export { parseJobState };

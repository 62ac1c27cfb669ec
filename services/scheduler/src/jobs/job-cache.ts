// The leader's parsed copy of the jobs it reads again and again: every scheduling pass reads
// the queued and placed jobs, every heartbeat the jobs on its node, every health window the
// running ones. Each read used to fetch and parse the JSON of every such job: with 100,000
// queued jobs, or a 1,000-node job whose record holds every rank's placement and is read by
// each of its 1,000 nodes' heartbeats, that parse was most of the work. Redis stays the
// truth; the copy is used only where Redis vouches for it:
//   - a pass reads the state index sets (ids only), then the job change stream that the
//     submit and commit scripts append to in the same step as the write, and fetches only
//     jobs that changed or are new to it (everything after a gap in the capped stream);
//   - a read by id compares revisions (one small round trip) and fetches only jobs whose
//     revision moved.
// One copy is shared by the loop, the heartbeats and the health monitor (SchedulerContext).
import type { JobState } from '@gantry/proto';
import type { JobRecord, JobStore } from '@gantry/store';

/** Freezes a parsed job so that code holding a cached record cannot change it in place (lifecycle rules clone before changing). */
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}

export class JobCache {
  private readonly records = new Map<string, JobRecord>();
  /** Newest job change stream entry applied; undefined until the first load. */
  private cursor: string | undefined;
  /** The ids of each state inStates tracks, in index order, and where each tracked id is. */
  private readonly lists = new Map<JobState, IndexEntry[]>();
  private readonly where = new Map<string, JobState>();
  private serial: Promise<unknown> = Promise.resolve();
  /**
   * Records this process committed (JobStore onCommitted), not yet met in the change stream:
   * when move() meets the change and Redis still holds that revision, the record is taken
   * from here instead of being read back and parsed (a pass's placements, a rank's start).
   * Never served unchecked: a later write by anyone moves the revision.
   */
  private readonly written = new Map<string, JobRecord>();
  private static readonly MAX_WRITTEN = 50_000;
  /** Jobs fetched by the last read (for tests and benchmarks). */
  lastFetched = 0;
  /** Records kept beyond a pass's states (read by id) are bounded; the oldest go first. */
  private static readonly MAX_RECORDS = 200_000;

  constructor(private readonly jobs: JobStore) {}

  /** A record this process committed (see `written`); the newest revision of a job is kept. */
  committed(rec: JobRecord): void {
    const had = this.written.get(rec.job.id);
    if (had && had.rev > rec.rev) return;
    this.written.delete(rec.job.id); // re-inserted: oldest first, for the bound
    this.written.set(rec.job.id, rec);
    if (this.written.size > JobCache.MAX_WRITTEN) this.written.delete(this.written.keys().next().value!);
  }

  /** Forget everything (a new leadership must not trust what an earlier one saw). */
  reset(): void {
    this.forget();
    // A read in flight may still add what it saw: forgotten again once it ends.
    this.serial = this.serial.then(() => this.forget());
  }

  /**
   * Jobs by id at their current revision (missing ones left out, order kept): one pipelined
   * round trip for the revisions, and a fetch of only the jobs whose revision moved.
   *
   * The records vouched for are held here across the fetch: a pass running meanwhile may drop
   * a changed job from the copy (inStates), and a job missing from the answer would read as
   * "no such job" to the caller (a heartbeat would stop its running rank).
   */
  async getMany(ids: readonly string[]): Promise<JobRecord[]> {
    const unique = [...new Set(ids)];
    const revs = await this.jobs.revisions(unique);
    const found = new Map<string, JobRecord>();
    const stale: string[] = [];
    unique.forEach((id, k) => {
      if (revs[k] === undefined) return;
      const r = this.records.get(id);
      const own = this.written.get(id);
      if (r && r.rev === revs[k]) found.set(id, r);
      else if (own && own.rev === revs[k]) found.set(id, this.keep(own));
      else stale.push(id);
    });
    this.lastFetched = stale.length;
    for (const rec of await this.jobs.getMany(stale)) found.set(rec.job.id, this.keep(rec));
    return unique.flatMap((id) => {
      const r = found.get(id);
      return r ? [r] : [];
    });
  }

  /** Keeps a fetched record, unless the copy already holds a newer one (a slower read of the same job finishing later); returns what the copy holds. */
  private keep(rec: JobRecord): JobRecord {
    const had = this.records.get(rec.job.id);
    if (had && had.rev > rec.rev) return had;
    this.records.delete(rec.job.id); // re-inserted: newest last, for the bound below
    this.records.set(rec.job.id, deepFreeze(rec));
    if (this.records.size > JobCache.MAX_RECORDS) this.records.delete(this.records.keys().next().value!);
    return rec;
  }

  /**
   * The jobs in each of the given states, oldest first (the index sets' order), as of this
   * call. A state's index is read whole once; after that its ids are kept here and moved by
   * the change stream: each changed job's state and creation time are read (one small
   * pipelined round trip) and the job is taken out of its old state's list and merged into
   * its new one's. A pass at rest so reads no index at all, where it read every queued and
   * placed job's id (41,000 running jobs on 10,000 nodes) each time.
   *
   * An index is read before the change stream, so a job written in between is seen as
   * changed and placed again.
   */
  async inStates<const S extends readonly JobState[]>(states: S): Promise<{ [K in keyof S]: JobRecord[] }> {
    // One at a time (the loop and the health monitor both call this): two calls applying
    // changes read at different moments could put back a job the later one had moved on.
    const run = this.serial.then(() => this.readStates(states));
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async readStates<const S extends readonly JobState[]>(states: S): Promise<{ [K in keyof S]: JobRecord[] }> {
    for (;;) {
      if (this.cursor === undefined) this.cursor = await this.jobs.changesHead();
      const untracked = [...new Set(states.filter((s) => !this.lists.has(s)))];
      const read = await Promise.all(untracked.map((s) => this.jobs.indexOfState(s)));
      untracked.forEach((s, k) => this.track(s, read[k]!));
      const changes = await this.jobs.changesSince(this.cursor);
      this.cursor = changes.cursor;
      if (changes.gap || !(await this.move([...changes.names]))) {
        // The capped stream no longer vouches for the copy (or a job could not be placed in
        // its index's order): everything is read again.
        this.forget();
        continue;
      }
      break;
    }
    // Records of tracked jobs the copy does not hold (new to it, changed, or evicted).
    const missing: string[] = [];
    for (const s of states) for (const e of this.lists.get(s)!) if (!this.records.has(e.id)) missing.push(e.id);
    if (this.records.size > this.where.size - missing.length) for (const id of this.records.keys()) if (!this.where.has(id)) this.records.delete(id);
    this.lastFetched = missing.length;
    for (const rec of await this.jobs.getMany(missing)) this.keep(rec);
    return states.map((s) => {
      const out: JobRecord[] = [];
      for (const e of this.lists.get(s)!) {
        const r = this.records.get(e.id);
        if (r) out.push(r);
      }
      return out;
    }) as { [K in keyof S]: JobRecord[] };
  }

  /** The state a tracked job was in at the last read of states (undefined: in none tracked). */
  stateOf(id: string): JobState | undefined {
    return this.where.get(id);
  }

  private forget(): void {
    this.records.clear();
    this.lists.clear();
    this.where.clear();
    this.written.clear();
    this.cursor = undefined;
  }

  /** Starts tracking a state with its index as read (a job already tracked elsewhere moves here only through the change stream). */
  private track(state: JobState, index: IndexEntry[]): void {
    const list: IndexEntry[] = [];
    for (const e of index) {
      if (this.where.has(e.id)) continue;
      this.where.set(e.id, state);
      list.push(e);
    }
    this.lists.set(state, list);
  }

  /**
   * Applies changed jobs to the tracked lists: their records are dropped (read again if they
   * are still tracked) and each moves to its current state's list. False: a job's place in
   * its index cannot be known (no creation time), and the lists must be read again.
   */
  private async move(changed: string[]): Promise<boolean> {
    if (changed.length === 0) return true;
    for (const id of changed) this.records.delete(id);
    const entries = await this.jobs.indexEntries(changed);
    const removed = new Map<JobState, Set<string>>();
    const added = new Map<JobState, IndexEntry[]>();
    for (let k = 0; k < changed.length; k++) {
      const id = changed[k]!;
      const now = entries[k];
      const own = this.written.get(id);
      if (own) {
        this.written.delete(id);
        // Frozen only now: the writer that got it back from its commit is done with it.
        if (now && own.rev === now.rev) this.keep(own);
      }
      const was = this.where.get(id);
      if (now && was === now.state) continue;
      if (now && this.lists.has(now.state) && now.created === undefined) return false;
      if (was !== undefined) {
        this.where.delete(id);
        const r = removed.get(was) ?? new Set<string>();
        r.add(id);
        removed.set(was, r);
      }
      if (now && this.lists.has(now.state)) {
        this.where.set(id, now.state);
        const a = added.get(now.state) ?? [];
        a.push({ id, created: now.created! });
        added.set(now.state, a);
      }
    }
    for (const [state, list] of this.lists) {
      const r = removed.get(state);
      const a = added.get(state);
      if (r || a) this.lists.set(state, mergeIndex(r ? list.filter((e) => !r.has(e.id)) : list, a ?? []));
    }
    return true;
  }
}

interface IndexEntry {
  id: string;
  created: number;
}

/** The index sets' order: creation time, then id (a sorted set orders equal scores by member). */
function before(a: IndexEntry, b: IndexEntry): boolean {
  return a.created < b.created || (a.created === b.created && a.id < b.id);
}

/** `list` (in index order) with `add` merged in: one walk, whatever the number of changes. */
function mergeIndex(list: IndexEntry[], add: IndexEntry[]): IndexEntry[] {
  if (add.length === 0) return list;
  add.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
  const out: IndexEntry[] = new Array(list.length + add.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < list.length && j < add.length) out[k++] = before(add[j]!, list[i]!) ? add[j++]! : list[i++]!;
  while (i < list.length) out[k++] = list[i++]!;
  while (j < add.length) out[k++] = add[j++]!;
  return out;
}

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
  /** Jobs fetched by the last read (for tests and benchmarks). */
  lastFetched = 0;
  /** Records kept beyond a pass's states (read by id) are bounded; the oldest go first. */
  private static readonly MAX_RECORDS = 200_000;

  constructor(private readonly jobs: JobStore) {}

  /** Forget everything (a new leadership must not trust what an earlier one saw). */
  reset(): void {
    this.records.clear();
    this.cursor = undefined;
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
      if (r && r.rev === revs[k]) found.set(id, r);
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
   * The jobs in each of the given states, oldest first, as of this call. The ids are read
   * before the change stream, so a job written in between is seen as changed and re-read.
   */
  async inStates<const S extends readonly JobState[]>(states: S): Promise<{ [K in keyof S]: JobRecord[] }> {
    if (this.cursor === undefined) this.cursor = await this.jobs.changesHead();
    const idLists = await Promise.all(states.map((s) => this.jobs.idsInState(s)));
    const changes = await this.jobs.changesSince(this.cursor);
    this.cursor = changes.cursor;
    if (changes.gap) this.records.clear();
    else for (const id of changes.ids) this.records.delete(id);
    // One walk over the ids (a pass runs this over the whole queue: no per-id allocations).
    const wanted = new Set<string>();
    const missing: string[] = [];
    for (const ids of idLists) {
      for (const id of ids) {
        wanted.add(id);
        if (!this.records.has(id)) missing.push(id);
      }
    }
    if (this.records.size > wanted.size - missing.length) for (const id of this.records.keys()) if (!wanted.has(id)) this.records.delete(id);
    this.lastFetched = missing.length;
    for (const rec of await this.jobs.getMany(missing)) this.keep(rec);
    return idLists.map((ids) => {
      const out: JobRecord[] = [];
      for (const id of ids) {
        const r = this.records.get(id);
        if (r) out.push(r);
      }
      return out;
    }) as { [K in keyof S]: JobRecord[] };
  }
}

// The leader's parsed copy of the jobs a scheduling pass reads (pending, placed, preempted,
// recovering). Every pass used to fetch and parse the JSON of every such job: with 100,000
// queued jobs, or a 1,000-node job whose record holds every attempt's placement, that parse
// was most of the pass. Now a pass reads the state index sets (ids only), then the job
// change stream that the submit and commit scripts append to in the same step as the write,
// and fetches only jobs that changed or are new to it. Redis stays the truth: the copy is
// dropped whenever the stream cannot vouch for it (a gap after trimming, a new leadership).
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
  /** Jobs fetched by the last read (for the metric and the benchmark). */
  lastFetched = 0;

  constructor(private readonly jobs: JobStore) {}

  /** Forget everything (a new leadership must not trust what an earlier one saw). */
  reset(): void {
    this.records.clear();
    this.cursor = undefined;
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
    const wanted = new Set(idLists.flat());
    for (const id of this.records.keys()) if (!wanted.has(id)) this.records.delete(id);
    const missing = [...wanted].filter((id) => !this.records.has(id));
    this.lastFetched = missing.length;
    for (const rec of await this.jobs.getMany(missing)) this.records.set(rec.job.id, deepFreeze(rec));
    return idLists.map((ids) => ids.flatMap((id) => {
      const r = this.records.get(id);
      return r ? [r] : [];
    })) as { [K in keyof S]: JobRecord[] };
  }
}

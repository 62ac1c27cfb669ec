// Failures remembered within a cycle. Free GPUs and reservation slack only shrink while a
// cycle runs, so a shape that failed at n nodes fails at >= n nodes for the rest of it: a
// queue of thousands of similar jobs costs one real attempt per shape.
//
// Exclusions only remove nodes, so a failure of the shape (no exclusions) holds for every
// job of that shape whatever its list; a job's own list makes its failure its own. When a
// job with a list fails, the memo asks once whether the shape fails too: then every later
// job of the shape, with any list, is answered here instead of by another search.
import type { ClusterState } from './cluster-state.js';
import type { Scenario } from './framework/types.js';
import type { JobFit } from './static-fit.js';
import { describeFailure, selectNodes, shapeOutcome, type GangFailure, type GangOutcome } from './topology.js';
import type { JobRequest, TopologyNeed } from './types.js';

interface Failure<T> {
  nodes: number;
  value: T;
}

/** A failure kept for one exclusion list (the candidates it removes). */
interface OwnFailure<T> extends Failure<T> {
  excluded: readonly number[];
}

export class FailureMemo<T> {
  /**
   * By shape, then by the rest of the key: the shape string is hashed once per job already
   * (FitCache), so a long queue builds no new key strings here.
   */
  private readonly failed = new Map<string, Map<string, Failure<T>>>();
  /**
   * Failures kept for one exclusion list, by shape and key, then by a hash of the list: a
   * lookup hashes the job's few excluded indices instead of building a key string, so jobs
   * with lists cost no garbage here however many such failures there are.
   */
  private readonly ownFailed = new Map<string, Map<string, Map<number, OwnFailure<T>[]>>>();
  /** How many failures are kept for one exclusion list: rare, so most lookups skip that search. */
  private own = 0;

  /** A known failure for the job: its shape's, or that of the same exclusion list. */
  get(shape: string, key: string, job: JobRequest, fit: JobFit): T | undefined {
    const known = this.failed.get(shape)?.get(key);
    if (known && job.nodes >= known.nodes) return known.value;
    if (this.own === 0 || !fit.excluded?.length) return undefined;
    const own = findOwn(this.ownFailed.get(shape)?.get(key)?.get(listHash(fit.excluded)), fit.excluded);
    return own && job.nodes >= own.nodes ? own.value : undefined;
  }

  /**
   * Records the job's failure. `withoutExclusions` answers for the shape (the failure without
   * the job's exclusions, or undefined when the shape would succeed); it is asked only when
   * the job's exclusions removed candidates.
   */
  remember(shape: string, key: string, job: JobRequest, fit: JobFit, value: T, withoutExclusions: () => T | undefined): void {
    let byKey = this.failed.get(shape);
    if (!byKey) this.failed.set(shape, (byKey = new Map()));
    if (!fit.excluded?.length) {
      byKey.set(key, { nodes: job.nodes, value });
      return;
    }
    const general = withoutExclusions();
    if (general !== undefined) {
      byKey.set(key, { nodes: job.nodes, value: general });
      return;
    }
    const excluded = fit.excluded;
    let byList = this.ownFailed.get(shape);
    if (!byList) this.ownFailed.set(shape, (byList = new Map()));
    let byHash = byList.get(key);
    if (!byHash) byList.set(key, (byHash = new Map()));
    const hash = listHash(excluded);
    let bucket = byHash.get(hash);
    if (!bucket) byHash.set(hash, (bucket = []));
    const known = findOwn(bucket, excluded);
    if (known) {
      known.nodes = job.nodes;
      known.value = value;
    } else {
      this.own += 1;
      bucket.push({ excluded: excluded.slice(), nodes: job.nodes, value });
    }
  }
}

/** A hash of a list of node indices (order matters: lists are kept ascending). */
export function listHash(list: readonly number[]): number {
  let h = 0x811c9dc5 ^ list.length;
  for (let k = 0; k < list.length; k++) h = Math.imul(h ^ list[k]!, 0x01000193);
  return h | 0;
}

function findOwn<T>(bucket: readonly OwnFailure<T>[] | undefined, excluded: readonly number[]): OwnFailure<T> | undefined {
  if (!bucket) return undefined;
  for (const f of bucket) {
    if (f.excluded.length !== excluded.length) continue;
    let same = true;
    for (let k = 0; k < excluded.length && same; k++) same = f.excluded[k] === excluded[k];
    if (same) return f;
  }
  return undefined;
}

const GUARDED: Record<TopologyNeed, string> = { any: 'g:any', 'same-nvlink-domain': 'g:same-nvlink-domain', 'same-switch': 'g:same-switch', 'same-spine': 'g:same-spine' };

/** selectNodes on a cycle's live state, remembering failures for the rest of the cycle. */
export class LiveSelector {
  private readonly failed = new FailureMemo<GangFailure>();
  /**
   * A remembered failure as each job size reads it, shared by the jobs of that size: a long
   * queue would otherwise allocate a failure and its message per job, all kept alive to the
   * end of the cycle.
   */
  private readonly phrased = new WeakMap<GangFailure, Map<number, GangFailure>>();

  constructor(private readonly state: ClusterState) {}

  /** `guarded`: the scenario holds the backfill reservation against the job. */
  select(job: JobRequest, shape: string, fit: JobFit, guarded: boolean, scenario: Scenario): GangOutcome {
    // One of a handful of constant strings, so a long queue builds no keys here.
    const key = guarded ? GUARDED[job.topology] : job.topology;
    const known = this.failed.get(shape, key, job, fit);
    if (known) {
      // A shape's failure is an upper bound for a job whose own list excludes more.
      const bounded = known.bounded === true || (fit.excluded?.length ?? 0) > 0;
      let byJob = this.phrased.get(known);
      if (!byJob) this.phrased.set(known, (byJob = new Map()));
      const as = job.nodes * 2 + (bounded ? 1 : 0);
      let f = byJob.get(as);
      if (!f) {
        const b = { ...known, bounded };
        byJob.set(as, (f = { ...b, message: describeFailure(job, b) }));
      }
      return f;
    }
    const own = selectNodes(this.state, job, fit, scenario);
    if (!own.ok) {
      this.failed.remember(shape, key, job, fit, own, () => {
        const shaped = shapeOutcome(this.state, job, fit, scenario, own);
        return shaped.ok ? undefined : shaped;
      });
    }
    return own;
  }
}

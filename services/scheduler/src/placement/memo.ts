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

export class FailureMemo<T> {
  /**
   * By shape, then by the rest of the key: the shape string is hashed once per job already
   * (FitCache), so a long queue builds no new key strings here.
   */
  private readonly failed = new Map<string, Map<string, { nodes: number; value: T }>>();
  /** Failures kept for one exclusion list: rare, so most lookups skip building that key. */
  private own = 0;

  /** A known failure for the job: its shape's, or that of the same exclusion list. */
  get(shape: string, key: string, job: JobRequest, fit: JobFit): T | undefined {
    const byKey = this.failed.get(shape);
    const known = byKey?.get(key);
    if (known && job.nodes >= known.nodes) return known.value;
    const own = this.own > 0 && fit.excluded?.length ? byKey?.get(key + ownKey(fit)) : undefined;
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
    if (general !== undefined) byKey.set(key, { nodes: job.nodes, value: general });
    else {
      this.own += 1;
      byKey.set(key + ownKey(fit), { nodes: job.nodes, value });
    }
  }
}

const ownKey = (fit: JobFit) => `#${fit.excluded!.join(',')}`;

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

// Static feasibility of a job: which nodes pass the filters that do not depend on what runs
// there (state, GPU type, labels, GPU count, hot spares, exclusions). Three savings make this
// cheap on a long queue:
//  - jobs with the same shape share one result per cycle (Plugins.shapeKey);
//  - nodes that look the same to the class filters (same state, model, GPU count and
//    labels) are judged once per class, so a shape costs one pass over typed arrays rather
//    than 4,096 filter calls each; node filters (spares) run only on the nodes they name;
//  - a job's own exclusion list is not part of its shape: it is a post-filter on the shape's
//    fit (gang selection skips the few excluded nodes; only a victim search or kept-rank
//    selection copies the candidate set), so 20,000 jobs with 20,000 different lists share
//    the fits of a few dozen shapes.
import type { ClusterState } from './cluster-state.js';
import { createCycleContext } from './framework/context.js';
import { DEFAULT_PLUGINS, firstOf, Plugins, type PluginRegistry, type Preference, type Verdict } from './framework/registry.js';
import type { CapacityFilterPlugin, CycleContext, FilterStatus, NodeSink } from './framework/types.js';
import { addCount } from './explain.js';
import { resolveKeep, type KeepPlan } from './kept.js';
import type { JobRequest, NodeView, RejectionCounts } from './types.js';

export interface StaticFit {
  /** 1 where the node passes every static filter. */
  mask: Uint8Array;
  /** Indices of those nodes, ascending. */
  candidates: Int32Array;
  /** Model ids the job accepts; undefined = any. */
  models: number[] | undefined;
  /** Static rejections per reason (the part of the explanation that waiting cannot fix). */
  rejections: RejectionCounts;
  /** Which filter rejects node i and why, as computed for the fit (lets a job's own filters be merged in cheaply). */
  verdict?: (i: number) => Verdict;
}

/** Everything selection needs to know about one job beyond its request. */
export interface JobFit extends StaticFit {
  /** The shape's fit before the job's own exclusions, when they remove candidates. */
  readonly shape?: StaticFit;
  /** Candidates of the shape that the job's exclusions remove, ascending. */
  readonly excluded?: readonly number[];
  /** Moves, in the shape's rejection counts, the nodes the job's exclusions name to their own reasons. */
  adjust?(counts: RejectionCounts): RejectionCounts;
  /** The same moves as `adjust`, in the same order, told to `sink` instead of applied (lets explanations share equal results). */
  moves?(sink: (reason: FilterStatus, n: number) => void): void;
  /** The registry's capacity filters (the default ones when absent). */
  readonly capacity?: readonly CapacityFilterPlugin[];
  /** The job's active score plugins, weighted; absent when none is active. */
  readonly prefer?: Preference;
  /** Ranks to keep on their nodes (recovery). */
  readonly keep?: KeepPlan;
}

/**
 * Groups nodes that every class filter treats alike. Labels only matter to jobs with a node
 * selector, so they split classes only when `withLabels`.
 */
export class NodeClasses {
  readonly classOf: Int32Array;
  /** One node per class, to run the filters on. */
  readonly representatives: NodeView[] = [];

  constructor(nodes: readonly NodeView[], withLabels: boolean) {
    this.classOf = new Int32Array(nodes.length);
    const ids = new Map<string, Map<string, Map<number, Map<string, number>>>>();
    let last: NodeView | undefined;
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      if (last && !withLabels && n.state === last.state && n.gpuModel === last.gpuModel && n.gpuCount === last.gpuCount) {
        this.classOf[i] = this.classOf[i - 1]!;
        continue;
      }
      last = n;
      let byModel = ids.get(n.state);
      if (!byModel) ids.set(n.state, (byModel = new Map()));
      let byCount = byModel.get(n.gpuModel);
      if (!byCount) byModel.set(n.gpuModel, (byCount = new Map()));
      let byLabels = byCount.get(n.gpuCount);
      if (!byLabels) byCount.set(n.gpuCount, (byLabels = new Map()));
      const labels = withLabels ? labelKey(n.labels) : '';
      let id = byLabels.get(labels);
      if (id === undefined) {
        id = this.representatives.length;
        byLabels.set(labels, id);
        this.representatives.push(n);
      }
      this.classOf[i] = id;
    }
  }
}

function labelKey(labels: Record<string, string>): string {
  let key = '';
  for (const k of Object.keys(labels).sort()) key += `${k}\u0001${labels[k]}\u0002`;
  return key;
}

/** The fit of the job's shape: class filters per node class, node filters on the nodes they name. */
function computeShapeFit(state: ClusterState, job: JobRequest, plugins: Plugins, classes: NodeClasses, cycle: CycleContext): StaticFit {
  const mask = new Uint8Array(state.size);
  const rejections: RejectionCounts = {};
  const candidates: number[] = [];
  const byClass = classes.representatives.map((n) => plugins.classVerdict(n, job));
  const byNode = new Map<number, Verdict>();
  for (const f of plugins.nodeFilters) for (const i of f.affected(job, cycle)) if (!byNode.has(i)) byNode.set(i, plugins.staticVerdict(i, job, cycle, true));
  const classOf = classes.classOf;
  const verdict = (i: number) => byNode.get(i) ?? byClass[classOf[i]!]!;
  for (let i = 0; i < state.size; i++) {
    const reason = (byNode.size > 0 ? verdict(i) : byClass[classOf[i]!]!)[1];
    if (reason === undefined) {
      mask[i] = 1;
      candidates.push(i);
    } else rejections[reason] = (rejections[reason] ?? 0) + 1;
  }
  const models = job.gpuTypes.length === 0 ? undefined : state.models.flatMap((m, id) => (job.gpuTypes.includes(m) ? [id] : []));
  return { mask, verdict, candidates: Int32Array.from(candidates), models, rejections };
}

/**
 * The shape's fit with one job's exclusions applied. Nothing is copied unless asked for:
 * most jobs of a long queue are turned down by the capacity bound without a scan, and only
 * the jobs left pending need their rejection counts.
 */
class ExcludingFit implements JobFit {
  /** What is copied on demand (rare): kept apart so the thousands of fits of a queue stay small. */
  private own: { mask?: Uint8Array; candidates?: Int32Array; rejections?: RejectionCounts } | undefined;

  constructor(
    /** The shape's entry: its fit, and the registry and cycle it was computed for. */
    private readonly entry: ShapeEntry,
    /** Candidates of the shape the job's filters reject, ascending. */
    readonly excluded: readonly number[],
    /** Other nodes they name (rejected by the shape already): their reason may change. */
    private readonly others: readonly number[],
    private readonly job: JobRequest,
    readonly prefer: Preference | undefined,
    readonly keep: KeepPlan | undefined,
  ) {}

  get shape(): StaticFit {
    return this.entry.fit;
  }

  get capacity(): readonly CapacityFilterPlugin[] {
    return this.entry.plugins.capacity;
  }

  get models(): number[] | undefined {
    return this.shape.models;
  }

  get mask(): Uint8Array {
    if (this.excluded.length === 0) return this.shape.mask;
    const own = (this.own ??= {});
    if (!own.mask) {
      own.mask = this.shape.mask.slice();
      for (const i of this.excluded) own.mask[i] = 0;
    }
    return own.mask;
  }

  get candidates(): Int32Array {
    if (this.excluded.length === 0) return this.shape.candidates;
    const own = (this.own ??= {});
    if (!own.candidates) {
      const mask = this.mask;
      const base = this.shape.candidates;
      const out = new Int32Array(base.length - this.excluded.length);
      let k = 0;
      for (const i of base) if (mask[i]) out[k++] = i;
      own.candidates = out;
    }
    return own.candidates;
  }

  moves(sink: (reason: FilterStatus, n: number) => void): void {
    const { job } = this;
    const { plugins, cycle } = this.entry;
    for (const i of this.excluded) sink(plugins.namedVerdict(i, job, cycle)[1], 1);
    for (const i of this.others) {
      const before = this.shape.verdict?.(i) ?? plugins.staticVerdict(i, job, cycle, true);
      const after = firstOf(before, plugins.namedVerdict(i, job, cycle));
      if (before[1] === after[1]) continue;
      sink(before[1], -1);
      sink(after[1], 1);
    }
  }

  adjust(counts: RejectionCounts): RejectionCounts {
    this.moves((reason, n) => addCount(counts, reason, n));
    return counts;
  }

  get rejections(): RejectionCounts {
    const own = (this.own ??= {});
    return (own.rejections ??= this.adjust({ ...this.shape.rejections }));
  }
}

interface ShapeEntry {
  fit: StaticFit;
  /** Fits of jobs with nothing of their own, per preference (usually one or two per cycle). */
  shared: Map<Preference | undefined, JobFit>;
  plugins: Plugins;
  cycle: CycleContext;
}

/**
 * Scratch for the nodes a job's filters name, reused from job to job (fitForJob is not
 * reentrant). Its array only grows: emptying an array with `length = 0` drops its storage,
 * and a long queue would allocate it again for every job.
 */
class NamedNodes implements NodeSink {
  readonly items: number[] = [];
  count = 0;
  push(i: number): void {
    if (this.count < this.items.length) this.items[this.count] = i;
    else this.items.push(i);
    this.count += 1;
  }
}

const named = new NamedNodes();
const NONE: readonly number[] = [];

/**
 * The job's fit from its shape's: its job-stage filters (exclusions) as a post-filter on the
 * few nodes they name, its score preferences and its kept ranks. A job with none of its own
 * gets the shape's shared fit for its preference.
 */
function fitForJob(entry: ShapeEntry, job: JobRequest, plugins: Plugins, cycle: CycleContext): JobFit {
  const shape = entry.fit;
  const prefer = plugins.preference(job, cycle);
  const keep = job.keep?.length ? resolveKeep(cycle.state, job, (i) => plugins.staticReason(i, job, cycle)) : undefined;
  named.count = 0;
  for (const f of plugins.jobFilters) f.affected(job, cycle, named);
  if (named.count > 0) {
    // Lists are short: dedupe and partition in the scratch array (the shape's candidates
    // first, ascending), then copy each part once at its exact size.
    const list = named.items;
    let n = 0;
    let k = 0;
    for (let r = 0; r < named.count; r++) {
      const i = list[r]!;
      let seen = false;
      for (let q = 0; q < n && !seen; q++) seen = list[q] === i;
      if (seen) continue;
      list[n++] = i;
      if (!shape.mask[i]) continue;
      let q = n - 1;
      for (; q > k; q--) list[q] = list[q - 1]!;
      for (; q > 0 && list[q - 1]! > i; q--) list[q] = list[q - 1]!;
      list[q] = i;
      k += 1;
    }
    return new ExcludingFit(entry, k > 0 ? list.slice(0, k) : NONE, n > k ? list.slice(k, n) : NONE, job, prefer, keep);
  }
  let fit = entry.shared.get(prefer);
  if (!fit) entry.shared.set(prefer, (fit = { ...shape, capacity: plugins.capacity, ...(prefer ? { prefer } : {}) }));
  return keep ? { ...fit, keep } : fit;
}

/**
 * Every static filter of the registry for one job, exclusions included (tools, tests,
 * placeGang). A cycle uses FitCache instead, which shares the work between jobs.
 */
export function computeStaticFit(state: ClusterState, job: JobRequest, registry: PluginRegistry = DEFAULT_PLUGINS, cycle: CycleContext = createCycleContext({ state })): JobFit {
  const plugins = Plugins.of(registry);
  const fit = computeShapeFit(state, job, plugins, new NodeClasses(state.nodes, plugins.readsLabels(job)), cycle);
  return fitForJob({ fit, shared: new Map(), plugins, cycle }, job, plugins, cycle);
}

export interface PreparedJob {
  /** The shape key: jobs with the same key share a static fit (exclusions are not part of it). */
  shape: string;
  fit: JobFit;
}

/** Per-cycle cache of shape fits (node states do not change within a cycle). */
export class FitCache {
  private readonly cache = new Map<string, ShapeEntry>();
  private plain: NodeClasses | undefined;
  private labelled: NodeClasses | undefined;

  constructor(
    private readonly plugins: Plugins,
    private readonly cycle: CycleContext,
  ) {}

  /** The shape key of the job `fit` was last asked about. */
  shape = '';

  get(job: JobRequest): PreparedJob {
    const fit = this.fit(job);
    return { shape: this.shape, fit };
  }

  /** The job's fit; its shape key is left in `shape` (a long queue allocates no pair per job). */
  fit(job: JobRequest): JobFit {
    const shape = this.plugins.shapeKey(job, this.cycle);
    let entry = this.cache.get(shape);
    if (!entry) {
      const nodes = this.cycle.state.nodes;
      const classes = this.plugins.readsLabels(job) ? (this.labelled ??= new NodeClasses(nodes, true)) : (this.plain ??= new NodeClasses(nodes, false));
      entry = { fit: computeShapeFit(this.cycle.state, job, this.plugins, classes, this.cycle), shared: new Map(), plugins: this.plugins, cycle: this.cycle };
      this.cache.set(shape, entry);
    }
    this.shape = shape;
    return fitForJob(entry, job, this.plugins, this.cycle);
  }
}

// The plugin registry: which filters run (in order: the first failing one names a node's
// reason) and which scores weigh in, with what weight. planCycle uses DEFAULT_PLUGINS unless
// CycleOptions.plugins says otherwise; a registry is checked and compiled once (Plugins.of).
import { blamePenaltyPlugin } from '../plugins/blame-penalty/index.js';
import { freeGpusPlugin } from '../plugins/free-gpus/index.js';
import { gpuCountPlugin } from '../plugins/gpu-count/index.js';
import { gpuTypePlugin } from '../plugins/gpu-type/index.js';
import { hotSparePlugin, preferSparesPlugin } from '../plugins/hot-spare/index.js';
import { nodeReadyPlugin } from '../plugins/node-ready/index.js';
import { nodeSelectorPlugin } from '../plugins/node-selector/index.js';
import { notExcludedPlugin } from '../plugins/not-excluded/index.js';
import { notReservedPlugin } from '../plugins/reservation/index.js';
import { repeatOffenderPlugin } from '../plugins/repeat-offender/index.js';
import type { JobRequest, NodeView } from '../types.js';
import {
  MAX_NODE_SCORE,
  type CapacityFilterPlugin,
  type ClassFilterPlugin,
  type CycleContext,
  type FilterPlugin,
  type FilterStatus,
  type JobFilterPlugin,
  type NodeFilterPlugin,
  type NodeScorer,
  type StaticFilterPlugin,
  type WeightedScore,
} from './types.js';

export interface PluginRegistry {
  /** Evaluation order; capacity filters run after the static ones whatever their position. */
  readonly filters: readonly FilterPlugin[];
  readonly scores: readonly WeightedScore[];
}

/**
 * Cheap and decisive filters first. HotSpare comes after the model and size checks so a
 * spare is reported as held only to jobs that could otherwise use it. BlamePenalty weighs
 * twice PreferSpares, so health stays the stronger preference should a spare ever be a node
 * under penalty (designation avoids them today); RepeatOffender weighs as much as a fresh blame.
 */
export const DEFAULT_PLUGINS: PluginRegistry = {
  filters: [nodeReadyPlugin, notExcludedPlugin, gpuTypePlugin, nodeSelectorPlugin, gpuCountPlugin, hotSparePlugin, freeGpusPlugin, notReservedPlugin],
  scores: [
    { plugin: blamePenaltyPlugin, weight: 2 },
    { plugin: repeatOffenderPlugin, weight: 2 },
    { plugin: preferSparesPlugin, weight: 1 },
  ],
};

/** A job's weighted score plugins combined: what gang selection orders by before best fit. */
export interface Preference {
  /** Sum of weight x score over the job's active score plugins. */
  score(i: number): number;
  /** The highest possible sum (every active plugin at MAX_NODE_SCORE). */
  readonly max: number;
  /** When every active plugin lists its lowered nodes: the nodes below `max`. */
  readonly lowered?: ReadonlySet<number>;
}

/**
 * Which static filter rejects a node first: its position in Plugins.staticFilters and its reason
 * ([-1, undefined] when none does). Positions let a job's own filters be merged with its
 * shape's verdict without running the shape's filters again.
 */
export type Verdict = readonly [number, FilterStatus];

export const PASS: Verdict = [-1, undefined];

/** The first of two verdicts in registry order (the one that names a node's reason). */
export function firstOf(a: Verdict, b: Verdict): Verdict {
  if (a[0] < 0) return b;
  if (b[0] < 0) return a;
  return a[0] < b[0] ? a : b;
}

export class PluginRegistryError extends Error {
  override readonly name = 'PluginRegistryError';
}

const compiled = new WeakMap<PluginRegistry, Plugins>();

/** Shape keys by their parts: each level one part, the leaf the joined key. */
interface KeyTrie {
  key?: string;
  next?: Map<unknown, KeyTrie>;
}

function step(node: KeyTrie, part: unknown): KeyTrie {
  let next = node.next?.get(part);
  if (!next) (node.next ??= new Map()).set(part, (next = {}));
  return next;
}

/** A registry checked and split by stage, for the planner's hot paths. */
export class Plugins {
  /** Class, node and job filters in registry order. */
  readonly staticFilters: readonly StaticFilterPlugin[];
  readonly classFilters: readonly ClassFilterPlugin[];
  readonly nodeFilters: readonly NodeFilterPlugin[];
  readonly jobFilters: readonly JobFilterPlugin[];
  readonly capacity: readonly CapacityFilterPlugin[];
  readonly scores: readonly WeightedScore[];
  /** The weighted form of a lone active scorer (scorers live for one cycle, so do these). */
  private readonly weighted = new WeakMap<NodeScorer, Preference>();
  /** Combined forms of several active scorers, by the first of them (they live for one cycle, so do these). */
  private readonly combined = new WeakMap<NodeScorer, { active: readonly { scorer: NodeScorer; weight: number }[]; preference: Preference }[]>();
  /** Shape keys per cycle, by their parts (see shapeKey). */
  private readonly shapes = new WeakMap<CycleContext, KeyTrie>();
  /** Verdicts per filter position and reason, shared: explanations ask for thousands per cycle. */
  private readonly verdicts: Map<string, Verdict>[] = [];
  /** The verdict on every node the job filters name, when a lone job filter declares it (`rejects`). */
  private readonly namedConstant: Verdict | undefined;

  static of(registry: PluginRegistry = DEFAULT_PLUGINS): Plugins {
    let p = compiled.get(registry);
    if (!p) compiled.set(registry, (p = new Plugins(registry)));
    return p;
  }

  private constructor(registry: PluginRegistry) {
    const names = new Set<string>();
    for (const p of [...registry.filters, ...registry.scores.map((s) => s.plugin)]) {
      if (names.has(p.name)) throw new PluginRegistryError(`plugin ${p.name} is registered twice`);
      names.add(p.name);
    }
    for (const { plugin, weight } of registry.scores) {
      if (!Number.isFinite(weight) || weight <= 0) throw new PluginRegistryError(`score plugin ${plugin.name}: weight must be a number > 0, got ${weight}`);
    }
    this.staticFilters = registry.filters.filter((f): f is StaticFilterPlugin => f.stage !== 'capacity');
    this.classFilters = registry.filters.filter((f): f is ClassFilterPlugin => f.stage === 'class');
    this.nodeFilters = registry.filters.filter((f): f is NodeFilterPlugin => f.stage === 'node');
    this.jobFilters = registry.filters.filter((f): f is JobFilterPlugin => f.stage === 'job');
    this.capacity = registry.filters.filter((f): f is CapacityFilterPlugin => f.stage === 'capacity');
    this.scores = registry.scores;
    const only = this.jobFilters.length === 1 ? this.jobFilters[0]! : undefined;
    this.namedConstant = only?.rejects !== undefined ? this.verdict(this.staticFilters.indexOf(only), only.rejects) : undefined;
  }

  /**
   * Jobs with the same shape get the same static fit: GPUs per node and what the class and
   * node filters read. Job filters (exclusions) are left out on purpose: they are applied
   * per job on top of the shape's fit, so thousands of distinct lists share one fit.
   */
  shapeKey(job: JobRequest, cycle: CycleContext): string {
    // The parts are looked up in a trie of the cycle's shapes, so the jobs of a shape share
    // one key string (already hashed for the fit cache) instead of each building its own.
    let node = this.shapes.get(cycle);
    if (!node) this.shapes.set(cycle, (node = {}));
    node = step(node, job.gpusPerNode);
    for (const f of this.classFilters) node = step(node, f.key(job));
    for (const f of this.nodeFilters) node = step(node, f.key(job, cycle));
    if (node.key === undefined) {
      let key = String(job.gpusPerNode);
      for (const f of this.classFilters) key += `|${f.key(job)}`;
      for (const f of this.nodeFilters) key += `|${f.key(job, cycle)}`;
      node.key = key;
    }
    return node.key;
  }

  /** Whether some class filter reads labels for this job. */
  readsLabels(job: JobRequest): boolean {
    return this.classFilters.some((f) => f.labels?.(job) ?? false);
  }

  /** The first failing class filter (its position in `staticFilters`, -1 when none): the verdict for every node of the class. */
  classVerdict(node: NodeView, job: JobRequest): Verdict {
    for (let k = 0; k < this.staticFilters.length; k++) {
      const f = this.staticFilters[k]!;
      if (f.stage !== 'class') continue;
      const reason = f.filter(node, job);
      if (reason !== undefined) return this.verdict(k, reason);
    }
    return PASS;
  }

  /** The first failing job filter for node i (exclusions), as a verdict. */
  jobVerdict(i: number, job: JobRequest, cycle: CycleContext): Verdict {
    const node = cycle.state.nodes[i]!;
    for (let k = 0; k < this.staticFilters.length; k++) {
      const f = this.staticFilters[k]!;
      if (f.stage !== 'job') continue;
      const reason = f.filter(node, i, job, cycle);
      if (reason !== undefined) return this.verdict(k, reason);
    }
    return PASS;
  }

  /**
   * jobVerdict for a node the job's filters named (JobFilterPlugin.affected): without calling
   * a filter when the registry's only job filter declares what it rejects.
   */
  namedVerdict(i: number, job: JobRequest, cycle: CycleContext): Verdict {
    return this.namedConstant ?? this.jobVerdict(i, job, cycle);
  }

  /** The first failing static filter for node i, in registry order; without the job stage when `shapeOnly`. */
  staticVerdict(i: number, job: JobRequest, cycle: CycleContext, shapeOnly = false): Verdict {
    const node = cycle.state.nodes[i]!;
    for (let k = 0; k < this.staticFilters.length; k++) {
      const f = this.staticFilters[k]!;
      const reason = f.stage === 'class' ? f.filter(node, job) : shapeOnly && f.stage === 'job' ? undefined : f.filter(node, i, job, cycle);
      if (reason !== undefined) return this.verdict(k, reason);
    }
    return PASS;
  }

  staticReason(i: number, job: JobRequest, cycle: CycleContext, shapeOnly = false): FilterStatus {
    return this.staticVerdict(i, job, cycle, shapeOnly)[1];
  }

  private verdict(position: number, reason: string): Verdict {
    const byReason = (this.verdicts[position] ??= new Map());
    let v = byReason.get(reason);
    if (!v) byReason.set(reason, (v = [position, reason]));
    return v;
  }

  /** The job's active score plugins combined, or undefined when none is active (best fit alone decides). */
  preference(job: JobRequest, cycle: CycleContext): Preference | undefined {
    let scorer: NodeScorer | undefined;
    let weight = 0;
    let active: { scorer: NodeScorer; weight: number }[] | undefined;
    for (const s of this.scores) {
      const prepared = s.plugin.prepare(job, cycle);
      if (!prepared) continue;
      if (!scorer) {
        scorer = prepared;
        weight = s.weight;
      } else (active ??= [{ scorer, weight }]).push({ scorer: prepared, weight: s.weight });
    }
    if (!scorer) return undefined;
    if (!active) {
      // A scorer is usually shared by every job of the cycle, and so is its weighted form.
      const one = scorer;
      const w = weight;
      let p = this.weighted.get(one);
      if (!p) {
        p = { score: (i) => w * one.score(i), max: w * MAX_NODE_SCORE, ...(one.lowered ? { lowered: one.lowered } : {}) };
        this.weighted.set(one, p);
      }
      return p;
    }
    // Several active scorers: also shared by the jobs that have the same ones (e.g. blamed
    // nodes and repeat offenders in one cycle), rather than combined again for every job.
    let known = this.combined.get(scorer);
    if (!known) this.combined.set(scorer, (known = []));
    const same = known.find((c) => c.active.length === active.length && c.active.every((a, k) => a.scorer === active[k]!.scorer && a.weight === active[k]!.weight));
    if (same) return same.preference;
    let max = 0;
    for (const a of active) max += a.weight * MAX_NODE_SCORE;
    const all = active;
    const sparse = all.every((a) => a.scorer.lowered !== undefined);
    const preference: Preference = {
      score: (i) => {
        let sum = 0;
        for (const a of all) sum += a.weight * a.scorer.score(i);
        return sum;
      },
      max,
      ...(sparse ? { lowered: new Set(all.flatMap((a) => [...a.scorer.lowered!])) } : {}),
    };
    known.push({ active: all, preference });
    return preference;
  }

  /** What the score plugins say about chosen nodes, for a placement's explanation: "; n7 (hot spare)", or ''. */
  describeNodes(nodes: readonly number[], cycle: CycleContext): string {
    const notes: string[] = [];
    for (const i of nodes) {
      const said = this.scores.flatMap(({ plugin }) => plugin.describe?.(i, cycle) ?? []);
      if (said.length > 0) notes.push(`${cycle.state.nodes[i]!.name} (${said.join(', ')})`);
    }
    return notes.length > 0 ? `; ${notes.join(', ')}` : '';
  }
}

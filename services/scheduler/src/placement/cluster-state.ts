// The cycle's working copy of the cluster, indexed so decisions do not scan or sort all nodes:
// free GPUs as bitmasks in typed arrays, free totals per topology domain (for best fit), and
// READY nodes bucketed by (leaf switch, GPU model, free GPU count) so a single-node job finds
// its tightest node by looking at a few buckets instead of 4,096 nodes.
//
// The input NodeViews are never mutated. GPU indices must be < 32 (one bitmask per node).
import type { NodeView } from './types.js';

export const MAX_GPUS_PER_NODE = 32;

/** The only node state that takes new work. */
export const READY = 'READY';

/** Interns domain names to dense ids in first-seen (node) order. */
class Interner {
  readonly names: string[] = [];
  private readonly ids = new Map<string, number>();
  // Snapshots list nodes switch by switch, so the previous name is usually the next one.
  private lastName: string | undefined;
  private lastId = -1;
  id(name: string): number {
    if (name === this.lastName) return this.lastId;
    this.lastName = name;
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    this.lastId = id;
    return id;
  }
}

export function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export function maskOf(gpus: readonly number[]): number {
  let m = 0;
  for (const g of gpus) if (g >= 0 && g < MAX_GPUS_PER_NODE) m |= 1 << g;
  return m >>> 0;
}

export function gpuIndices(mask: number): number[] {
  const out: number[] = [];
  for (let g = 0; g < MAX_GPUS_PER_NODE; g++) if (mask & (1 << g)) out.push(g);
  return out;
}

export class ClusterState {
  readonly size: number;
  readonly byName = new Map<string, number>();
  readonly freeMask: Uint32Array;
  readonly freeCount: Uint8Array;
  readonly ready: Uint8Array;
  readonly model: Int32Array;
  readonly models: string[];
  readonly maxGpus: number;

  readonly nvl: Int32Array;
  readonly leaf: Int32Array;
  readonly spine: Int32Array;
  readonly nvlNames: string[];
  readonly leafNames: string[];
  readonly spineNames: string[];
  /** Parent of each NVLink domain / leaf switch (taken from its first node). */
  readonly nvlLeaf: Int32Array;
  readonly leafSpine: Int32Array;
  /**
   * Containment: whether all nodes of an NVLink domain sit under one leaf switch / spine, and
   * of a leaf switch under one spine. Real fabrics usually nest, but an NVLink rack can be
   * cabled to several leaves, and then it does not satisfy a same-switch requirement.
   */
  readonly nvlInOneLeaf: Uint8Array;
  readonly nvlInOneSpine: Uint8Array;
  readonly leafInOneSpine: Uint8Array;
  /** Largest NVLink domain, in nodes: gangs bigger than this skip the NVLink level. */
  readonly maxNvlSize: number;

  /** Free GPUs on READY nodes per domain: the best-fit signal (lower = more used). */
  readonly nvlFree: Int32Array;
  readonly leafFree: Int32Array;
  readonly spineFree: Int32Array;

  private readonly buckets: number[][];
  private readonly bucketPos: Int32Array;
  /** READY nodes per (model, free count): an O(models x GPUs) upper bound on eligibility. */
  private readonly capacity: Int32Array;
  /**
   * The buckets' sizes, laid out (model, free count, leaf) so that one (model, free count) is
   * a run over the leaves (see leafRun): a single-node job finds the leaves holding a node it
   * could take in one pass over a typed array.
   */
  readonly bucketSizes: Int32Array;

  constructor(readonly nodes: readonly NodeView[]) {
    const n = nodes.length;
    this.size = n;
    this.freeMask = new Uint32Array(n);
    this.freeCount = new Uint8Array(n);
    this.ready = new Uint8Array(n);
    this.model = new Int32Array(n);
    this.nvl = new Int32Array(n);
    this.leaf = new Int32Array(n);
    this.spine = new Int32Array(n);
    const models = new Interner();
    const nvls = new Interner();
    const leaves = new Interner();
    const spines = new Interner();
    let maxGpus = 1;
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      this.byName.set(node.name, i);
      if (this.byName.size !== i + 1) throw new RangeError(`duplicate node name ${node.name} in snapshot`);
      this.ready[i] = node.state === READY ? 1 : 0;
      const mask = maskOf(node.freeGpus);
      this.freeMask[i] = mask;
      this.freeCount[i] = popcount(mask);
      this.model[i] = models.id(node.gpuModel);
      maxGpus = Math.max(maxGpus, Math.min(node.gpuCount, MAX_GPUS_PER_NODE), this.freeCount[i]!);
      // A node with no topology data is its own domain: claiming locality we cannot see
      // would be worse than spreading.
      const t = node.topology;
      this.nvl[i] = nvls.id(t.nvlinkDomain || `node:${node.name}`);
      this.leaf[i] = leaves.id(t.leafSwitch || `node:${node.name}`);
      this.spine[i] = spines.id(t.spine || `node:${node.name}`);
    }
    this.models = models.names;
    this.maxGpus = maxGpus;
    this.nvlNames = nvls.names;
    this.leafNames = leaves.names;
    this.spineNames = spines.names;
    this.nvlLeaf = new Int32Array(nvls.names.length).fill(-1);
    this.leafSpine = new Int32Array(leaves.names.length).fill(-1);
    const nvlSizes = new Int32Array(nvls.names.length);
    const nvlSpine = new Int32Array(nvls.names.length).fill(-1);
    this.nvlInOneLeaf = new Uint8Array(nvls.names.length).fill(1);
    this.nvlInOneSpine = new Uint8Array(nvls.names.length).fill(1);
    this.leafInOneSpine = new Uint8Array(leaves.names.length).fill(1);
    this.nvlFree = new Int32Array(nvls.names.length);
    this.leafFree = new Int32Array(leaves.names.length);
    this.spineFree = new Int32Array(spines.names.length);
    const bucketCount = leaves.names.length * models.names.length * (maxGpus + 1);
    this.buckets = Array.from({ length: bucketCount }, () => []);
    this.bucketPos = new Int32Array(n).fill(-1);
    this.capacity = new Int32Array(models.names.length * (maxGpus + 1));
    this.bucketSizes = new Int32Array(bucketCount);
    for (let i = 0; i < n; i++) {
      const v = this.nvl[i]!;
      const l = this.leaf[i]!;
      const sp = this.spine[i]!;
      nvlSizes[v] = nvlSizes[v]! + 1;
      if (this.nvlLeaf[v] === -1) this.nvlLeaf[v] = l;
      else if (this.nvlLeaf[v] !== l) this.nvlInOneLeaf[v] = 0;
      if (nvlSpine[v] === -1) nvlSpine[v] = sp;
      else if (nvlSpine[v] !== sp) this.nvlInOneSpine[v] = 0;
      if (this.leafSpine[l] === -1) this.leafSpine[l] = sp;
      else if (this.leafSpine[l] !== sp) this.leafInOneSpine[l] = 0;
      if (this.ready[i]) {
        this.addFree(i, this.freeCount[i]!);
        this.bucketInsert(i);
      }
    }
    this.maxNvlSize = nvlSizes.reduce((a, b) => Math.max(a, b), 0);
  }

  static of(nodes: readonly NodeView[]): ClusterState {
    return new ClusterState(nodes);
  }

  bucket(leaf: number, model: number, free: number): readonly number[] {
    return this.buckets[this.bucketKey(leaf, model, free)]!;
  }

  /** READY nodes of the given models (undefined = any) with at least `gpus` free. */
  nodesWithFree(models: readonly number[] | undefined, gpus: number): number {
    let count = 0;
    const width = this.maxGpus + 1;
    const each = (m: number) => {
      for (let k = gpus; k <= this.maxGpus; k++) count += this.capacity[m * width + k]!;
    };
    if (models) models.forEach(each);
    else for (let m = 0; m < this.models.length; m++) each(m);
    return count;
  }

  /** READY nodes of the given models with exactly `free` GPUs free. */
  nodesAt(models: readonly number[], free: number): number {
    let count = 0;
    for (const m of models) count += this.capacity[m * (this.maxGpus + 1) + free]!;
    return count;
  }

  get leafCount(): number {
    return this.leafNames.length;
  }

  /** Where (model, free count)'s run of per-leaf bucket sizes starts in bucketSizes. */
  leafRun(model: number, free: number): number {
    return (model * (this.maxGpus + 1) + Math.min(free, this.maxGpus)) * this.leafNames.length;
  }

  /** Removes GPUs from the free set (a placement or a hold). Throws on double-booking. */
  take(i: number, gpus: readonly number[]): void {
    const mask = maskOf(gpus);
    if ((this.freeMask[i]! & mask) >>> 0 !== mask) {
      throw new Error(`GPUs [${gpus.join(',')}] on ${this.nodes[i]!.name} are not all free`);
    }
    this.setFree(i, (this.freeMask[i]! & ~mask) >>> 0);
  }

  /** Returns GPUs to the free set. */
  give(i: number, gpus: readonly number[]): void {
    this.setFree(i, (this.freeMask[i]! | maskOf(gpus)) >>> 0);
  }

  /** A copy of the free counts, for "what if" scenarios (preemption, reservations). */
  freeCountsCopy(): Uint8Array {
    return this.freeCount.slice();
  }

  private setFree(i: number, mask: number): void {
    const before = this.freeCount[i]!;
    const after = popcount(mask);
    if (this.ready[i]) {
      this.bucketRemove(i);
      this.addFree(i, after - before);
    }
    this.freeMask[i] = mask;
    this.freeCount[i] = after;
    if (this.ready[i]) this.bucketInsert(i);
  }

  private addFree(i: number, delta: number): void {
    const v = this.nvl[i]!;
    const l = this.leaf[i]!;
    const s = this.spine[i]!;
    this.nvlFree[v] = this.nvlFree[v]! + delta;
    this.leafFree[l] = this.leafFree[l]! + delta;
    this.spineFree[s] = this.spineFree[s]! + delta;
  }

  private bucketKey(leaf: number, model: number, free: number): number {
    return (leaf * this.models.length + model) * (this.maxGpus + 1) + Math.min(free, this.maxGpus);
  }

  private bucketInsert(i: number): void {
    const c = this.model[i]! * (this.maxGpus + 1) + this.freeCount[i]!;
    this.capacity[c] = this.capacity[c]! + 1;
    const z = this.leafRun(this.model[i]!, this.freeCount[i]!) + this.leaf[i]!;
    this.bucketSizes[z] = this.bucketSizes[z]! + 1;
    const b = this.buckets[this.bucketKey(this.leaf[i]!, this.model[i]!, this.freeCount[i]!)]!;
    this.bucketPos[i] = b.length;
    b.push(i);
  }

  private bucketRemove(i: number): void {
    const c = this.model[i]! * (this.maxGpus + 1) + this.freeCount[i]!;
    this.capacity[c] = this.capacity[c]! - 1;
    const z = this.leafRun(this.model[i]!, this.freeCount[i]!) + this.leaf[i]!;
    this.bucketSizes[z] = this.bucketSizes[z]! - 1;
    const b = this.buckets[this.bucketKey(this.leaf[i]!, this.model[i]!, this.freeCount[i]!)]!;
    const pos = this.bucketPos[i]!;
    const last = b.pop()!;
    if (last !== i) {
      b[pos] = last;
      this.bucketPos[last] = pos;
    }
    this.bucketPos[i] = -1;
  }
}

// A detection scenario: a cluster, its workload and background noise, and a list of injected
// faults, read from a JSON file in scenarios/ with a fixed seed. parseScenario validates a
// document and reports every problem with its path.

export const FAULT_KINDS = [
  // Hardware, with a precursor pattern before the XID.
  'remap-buildup', 'ecc-storm', 'nvlink-degradation', 'thermal-runaway', 'pcie-degradation',
  // Hardware (or benign, by XID) without precursors.
  'sudden-xid', 'node-crash', 'roce-flap',
  // A node's own NFS client/NIC stalling: looks like storage, is the node.
  'nfs-client-stall',
  // Shared: one storage target, one leaf switch's fabric, one management segment.
  'nfs-stall', 'fabric-flap', 'mgmt-blip',
  // Progress.
  'straggler', 'nccl-hang',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultSpec {
  id: string;
  kind: FaultKind;
  /** Node index (0-based). */
  node?: number;
  gpu?: number;
  /** NFS target (server:/export) or leaf switch name. */
  target?: string;
  /** Hours after the start: when the fault culminates (its XID) or, for episodes, starts. */
  atHours: number;
  /** Hours of precursor before atHours (may reach before the start: a fault already under way). */
  precursorHours?: number;
  /** Minutes the episode lasts (stalls, flaps, stragglers, hangs, crashes). */
  durationMin?: number;
  /** The XID at atHours; 0 or absent for none. */
  xid?: number;
  /** false: the XID happens but never reaches the scheduler (agent down, kmsg backlog lost). */
  reportXid?: boolean;
  params?: Record<string, number | string | boolean>;
}

export interface NoiseSpec {
  /** GPUs with a steady, harmless corrected-ECC trickle (errors/s, each drawn in range). */
  steadySbeGpus: number;
  steadySbeRate: [number, number];
  /** Isolated corrected-ECC bursts per day cluster-wide (one interval, 5-60 errors). */
  sbeBurstsPerDay: number;
  steadyPcieGpus: number;
  steadyPcieRate: [number, number];
  nvlinkBlipsPerDay: number;
  symbolErrorBlipsPerDay: number;
  /** Application XIDs (13/31/43) per day cluster-wide: user bugs, never the node. */
  appXidsPerDay: number;
  /** Contained XID 94 without any precursor per week: restart the app, node fine. */
  contained94PerWeek: number;
  /** A single row remapped (XID 63, pending until reset) per week: normal wear. */
  singleRemapsPerWeek: number;
  /** Heartbeat gaps of 20-40 s per day cluster-wide (network blips, agent restarts). */
  heartbeatBlipsPerDay: number;
  /** Batches whose GPU collector failed, per day cluster-wide. */
  collectorFailuresPerDay: number;
  /** Per-node temperature offset sd (°C) and per-GPU sd. */
  nodeTempSd: number;
  gpuTempSd: number;
}

export interface Scenario {
  name: string;
  description: string;
  seed: number;
  days: number;
  /** Seconds between generated batches (and evaluation windows). */
  intervalSec: number;
  cluster: { nodes: number; gpusPerNode: number; gpuModel: string; leafSwitches: number };
  workload: {
    mainJobNodes: number;
    secondJobNodes: number;
    checkpointEveryMin: number;
    checkpointMin: number;
    /** Hours a node is out for repair after a hardware fault that needs one. */
    repairHours: number;
  };
  noise: NoiseSpec;
  faults: FaultSpec[];
  notes?: string[];
}

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  constructor(readonly issues: string[]) {
    super(`invalid scenario:\n  ${issues.join('\n  ')}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseScenario(doc: unknown): Scenario {
  const issues: string[] = [];
  const num = (o: Record<string, unknown>, k: string, path: string, min = 0): void => {
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k]) || (o[k] as number) < min) issues.push(`${path}.${k}: expected a number >= ${min}, got ${JSON.stringify(o[k])}`);
  };
  if (!isObj(doc)) throw new ScenarioError(['(root): expected an object']);
  for (const k of ['name', 'description']) if (typeof doc[k] !== 'string') issues.push(`${k}: expected a string`);
  num(doc, 'seed', '(root)');
  num(doc, 'days', '(root)', 1);
  num(doc, 'intervalSec', '(root)', 10);
  for (const [section, keys] of [
    ['cluster', ['nodes', 'gpusPerNode', 'leafSwitches']],
    ['workload', ['mainJobNodes', 'secondJobNodes', 'checkpointEveryMin', 'checkpointMin', 'repairHours']],
    ['noise', ['steadySbeGpus', 'sbeBurstsPerDay', 'steadyPcieGpus', 'nvlinkBlipsPerDay', 'symbolErrorBlipsPerDay', 'appXidsPerDay',
      'contained94PerWeek', 'singleRemapsPerWeek', 'heartbeatBlipsPerDay', 'collectorFailuresPerDay', 'nodeTempSd', 'gpuTempSd']],
  ] as const) {
    const o = doc[section];
    if (!isObj(o)) {
      issues.push(`${section}: expected an object`);
      continue;
    }
    for (const k of keys) num(o, k, section);
  }
  const nodes = isObj(doc.cluster) && typeof doc.cluster.nodes === 'number' ? doc.cluster.nodes : 0;
  const w = isObj(doc.workload) ? doc.workload : {};
  if (typeof w.mainJobNodes === 'number' && typeof w.secondJobNodes === 'number' && w.mainJobNodes + w.secondJobNodes > nodes) {
    issues.push('workload: mainJobNodes + secondJobNodes exceed cluster.nodes');
  }
  const ids = new Set<string>();
  if (!Array.isArray(doc.faults)) issues.push('faults: expected a list');
  else {
    doc.faults.forEach((f, i) => {
      const path = `faults[${i}]`;
      if (!isObj(f)) {
        issues.push(`${path}: expected an object`);
        return;
      }
      if (typeof f.id !== 'string' || ids.has(f.id)) issues.push(`${path}.id: expected a unique string`);
      else ids.add(f.id);
      if (!(FAULT_KINDS as readonly string[]).includes(f.kind as string)) issues.push(`${path}.kind: expected one of ${FAULT_KINDS.join(', ')}`);
      num(f, 'atHours', path);
      if (typeof doc.days === 'number' && typeof f.atHours === 'number' && f.atHours > doc.days * 24) issues.push(`${path}.atHours: after the end`);
      const needsNode = !['nfs-stall', 'fabric-flap', 'mgmt-blip'].includes(f.kind as string);
      if (needsNode && (typeof f.node !== 'number' || f.node < 0 || f.node >= nodes)) issues.push(`${path}.node: expected a node index below ${nodes}`);
      if (!needsNode && typeof f.target !== 'string') issues.push(`${path}.target: required for ${String(f.kind)}`);
      for (const k of ['precursorHours', 'durationMin', 'xid', 'gpu'] as const) if (f[k] !== undefined) num(f, k, path);
    });
  }
  if (issues.length > 0) throw new ScenarioError(issues);
  return doc as unknown as Scenario;
}

// The signals the detector scores, with how each is judged. Everything here is a default;
// the health config overrides any field per signal (HealthConfig.signals).
//
// mode:
//   relative  judged against the node's own baseline AND its peers (min of the two z-scores):
//             a node is abnormal only if it changed AND differs from the others, so a node that
//             has always run 3 °C hot, or a cluster-wide load change, is not an alarm. While the
//             node's own baseline warms up it scores nothing.
//   absolute  judged against peers only: the healthy value is a property of the hardware (no
//             remapped-row growth, no heartbeat gaps), so a node that has been bad since before
//             monitoring started must not learn its badness as "normal".
//   flag      a condition that is bad whenever present (remapping failure, DBE): full strength.
// floor: the smallest change that matters, in the signal's unit; it is the least robust scale
//   (z = deviation / max(1.4826·MAD, floor)), so a counter that is always zero on healthy
//   hardware does not turn its first error into an infinite z-score.
// group: signals a shared cause can move on many nodes at once; the shared-fault aggregator
//   (shared.ts) attributes them to a storage target, fabric segment or management network.
import type { Direction } from './robust.js';

export type SignalMode = 'relative' | 'absolute' | 'flag';
export type SharedGroup = 'storage' | 'fabric' | 'management';

export interface SignalSpec {
  weight: number;
  floor: number;
  direction: Direction;
  mode: SignalMode;
  group?: SharedGroup;
  /** How a window's batches combine: mean of per-batch values (rates, gauges) or max (flags, counts). */
  aggregate: 'mean' | 'max';
  /**
   * Whether a deviation of this signal counts as "degraded" for the shared-fault aggregator.
   * Client-side queueing (NFS backlog, slot use, execute time) is excluded: every node of a
   * job fills its RPC slot table during a checkpoint, which is load, not a storage fault.
   */
  sharedEvidence?: boolean;
  unit: string;
}

export const SIGNAL_NAMES = [
  'gpu.ecc_sbe_rate', 'gpu.ecc_dbe', 'gpu.remap_growth', 'gpu.remap_pending', 'gpu.remap_failure',
  'gpu.retired_growth', 'gpu.retired_pending', 'gpu.pcie_replay_rate',
  'gpu.nvlink_crc_rate', 'gpu.nvlink_replay_rate', 'gpu.nvlink_recovery_rate', 'gpu.nvlink_down',
  'gpu.temperature', 'gpu.memory_temperature', 'gpu.thermal_throttle', 'gpu.hw_slowdown', 'gpu.clock_ratio', 'gpu.power_ratio',
  'gpu.util_vs_job',
  'nfs.retrans_rate', 'nfs.major_timeout_rate', 'nfs.rtt_ms', 'nfs.execute_ms', 'nfs.backlog', 'nfs.slot_utilization',
  'rdma.symbol_error_rate', 'rdma.link_error_rate', 'rdma.link_downed', 'rdma.pfc_pause_rate',
  'rdma.out_of_sequence_rate', 'rdma.retransmit_rate',
  'heartbeat.gap_seconds',
] as const;

export type SignalName = (typeof SIGNAL_NAMES)[number];

export function isSignalName(s: string): s is SignalName {
  return (SIGNAL_NAMES as readonly string[]).includes(s);
}

const rel = (weight: number, floor: number, unit: string, direction: Direction = 'high', group?: SharedGroup): SignalSpec =>
  ({ weight, floor, direction, mode: 'relative', aggregate: 'mean', unit, ...(group ? { group } : {}) });
const abs = (weight: number, floor: number, unit: string, group?: SharedGroup): SignalSpec =>
  ({ weight, floor, direction: 'high', mode: 'absolute', aggregate: 'max', unit, ...(group ? { group } : {}) });
const flag = (weight: number, unit = 'flag'): SignalSpec =>
  ({ weight, floor: 1, direction: 'high', mode: 'flag', aggregate: 'max', unit });

/**
 * Defaults. Weights are points per unit of decayed evidence (a z-score above the dead band,
 * at most capZ - deadZ = 7 by default): one fully lit signal of weight 1 gives 7 points,
 * above the default SUSPECT threshold (4) and below QUARANTINED (12). Signals that measure one
 * cause several ways (NVLink CRC/replay/recovery; NFS RTT/execute/backlog/slots) share weight so
 * one cause is not counted three times; a lone correlated aspect (slot use saturating during a
 * checkpoint, the normal case per the 504-GPU report) cannot raise an alarm by itself.
 */
export const DEFAULT_SIGNALS: Readonly<Record<SignalName, SignalSpec>> = {
  // Corrected ECC: many healthy GPUs show a steady trickle; a rising rate precedes DBEs.
  'gpu.ecc_sbe_rate': rel(1, 0.002, 'errors/s'),
  // Any uncorrectable error in the window: severe, but the XID (48/94/95) decides the action.
  'gpu.ecc_dbe': flag(0.8, 'errors'),
  // Rows remapped per day over the last day (correctable + uncorrectable). Healthy HBM remaps
  // almost never; one GPU in the 504-GPU report built up 254 rows over 55 days (~4.6/day) and
  // then fell off the bus.
  'gpu.remap_growth': abs(1.2, 1, 'rows/day'),
  // A remap is waiting for a GPU reset; until then the row is still in use.
  'gpu.remap_pending': flag(0.45),
  // The GPU ran out of spare rows: RMA territory.
  'gpu.remap_failure': flag(2),
  'gpu.retired_growth': abs(1.2, 1, 'pages/day'),
  'gpu.retired_pending': flag(0.45),
  'gpu.pcie_replay_rate': rel(1, 0.01, 'replays/s'),
  'gpu.nvlink_crc_rate': rel(0.6, 0.005, 'errors/s'),
  'gpu.nvlink_replay_rate': rel(0.6, 0.005, 'errors/s'),
  'gpu.nvlink_recovery_rate': rel(0.6, 0.001, 'errors/s'),
  'gpu.nvlink_down': flag(0.8, 'links'),
  // Gauges are read on busy GPUs only (utilisation >= 50%), so idle nodes are not compared with busy ones.
  'gpu.temperature': rel(0.7, 2, '°C'),
  'gpu.memory_temperature': rel(0.4, 2, '°C'),
  // Software thermal slowdown: the driver easing clocks as the GPU nears its limit.
  'gpu.thermal_throttle': rel(1, 0.05, 'fraction'),
  // Hardware protection engaged (HW thermal slowdown, HW power brake, HW slowdown): never
  // part of healthy operation, so judged against peers only and weighted to reach SUSPECT
  // within two windows even when it lasts only that long.
  'gpu.hw_slowdown': { ...abs(1.2, 0.05, 'fraction'), aggregate: 'mean' },
  'gpu.clock_ratio': rel(0.6, 0.04, 'ratio', 'low'),
  'gpu.power_ratio': rel(0.3, 0.06, 'ratio', 'low'),
  // Effective throughput (utilisation x clock ratio) minus the median of the job's other nodes.
  'gpu.util_vs_job': { weight: 0.6, floor: 8, direction: 'low', mode: 'absolute', aggregate: 'mean', unit: 'points' },
  'nfs.retrans_rate': rel(0.5, 0.05, 'retrans/s', 'high', 'storage'),
  'nfs.major_timeout_rate': { ...abs(0.8, 0.003, 'timeouts/s', 'storage'), aggregate: 'mean' },
  // Server round trip, which excludes client-side queueing: a checkpoint burst fills the slot
  // table (queueing) but moves RTT far less than a stalled server does.
  'nfs.rtt_ms': rel(0.6, 25, 'ms', 'high', 'storage'),
  'nfs.execute_ms': { ...rel(0.3, 250, 'ms', 'high', 'storage'), sharedEvidence: false },
  'nfs.backlog': { ...rel(0.15, 30, 'requests', 'high', 'storage'), sharedEvidence: false },
  'nfs.slot_utilization': { ...rel(0.1, 0.3, 'fraction', 'high', 'storage'), sharedEvidence: false },
  'rdma.symbol_error_rate': rel(0.6, 0.01, 'errors/s', 'high', 'fabric'),
  'rdma.link_error_rate': rel(0.5, 0.01, 'errors/s', 'high', 'fabric'),
  'rdma.link_downed': abs(0.8, 0.5, 'events', 'fabric'),
  'rdma.pfc_pause_rate': rel(0.25, 200, 'pauses/s', 'high', 'fabric'),
  'rdma.out_of_sequence_rate': rel(0.3, 2, 'packets/s', 'high', 'fabric'),
  'rdma.retransmit_rate': rel(0.4, 2, 'retrans/s', 'high', 'fabric'),
  // Longest silence in the window; the scheduler declares LOST on its own timeout, this only
  // makes repeated gaps count toward SUSPECT.
  'heartbeat.gap_seconds': { ...abs(0.8, 10, 's', 'management'), aggregate: 'max' },
};

/** Signal keys carry the mount target for NFS ("nfs.rtt_ms@10.0.0.11:/checkpoints"). */
export function signalKey(name: SignalName, target?: string): string {
  return target === undefined ? name : `${name}@${target}`;
}

export function parseSignalKey(key: string): { name: SignalName; target?: string } | undefined {
  const at = key.indexOf('@');
  const name = at < 0 ? key : key.slice(0, at);
  if (!isSignalName(name)) return undefined;
  return at < 0 ? { name } : { name, target: key.slice(at + 1) };
}

// Storage admission policy, pure: which NFS client telemetry belongs to a target, what it adds
// up to, and the AIMD step that sets the pool size from it. The storage service runs it every
// control interval; `pnpm bench:checkpoint` imports the SAME functions (and the same Redis
// lease store) for its admitted arm, so the benchmark measures this code, not a copy.
import type { NfsMountTelemetry, TelemetryBatch } from '@gantry/proto';

export type Mode = 'write' | 'read';

export interface PoolBounds {
  /** Pool size before the first controller step. */
  initial: number;
  min: number;
  max: number;
}

export interface AimdParams {
  /**
   * Least added per step while the pool is the bottleneck (waiters, every slot used, bandwidth
   * left); the step is larger when the measured bytes per lease say the pool is far too small
   * (toward capacity x headroom / bytes per lease, at most doubling per step).
   */
  increase: number;
  /** Multiplied on congestion (0..1). */
  decrease: number;
  /** Named with a congestion decrease: mean transport backlog (RPCs waiting for a slot) per writing node above this. */
  backlogHigh: number;
  /** Congestion (the server queueing): RTT of the mode's RPCs (READ or WRITE) above this, in ms. */
  rttHighMs: number;
  /** Named with a congestion decrease: mean slot table utilisation of the writing nodes above this (0..1). */
  slotUtilizationHigh: number;
  /** Grow only while the target moves less than this share of its capacity (0..1). */
  capacityHeadroom: number;
  /** Steps to hold after a decrease: telemetry lags the limit by about one interval. */
  holdAfterDecrease: number;
  /** While the health detector flags the target: the limit is at most this share of max. */
  degradedShare: number;
}

export const DEFAULT_AIMD: AimdParams = {
  increase: 2,
  decrease: 0.7,
  backlogHigh: 32,
  rttHighMs: 20,
  slotUtilizationHigh: 0.95,
  capacityHeadroom: 0.9,
  holdAfterDecrease: 1,
  degradedShare: 0.25,
};

/** What the controller sees of one mode of one target, each interval. */
export interface StorageSignals {
  /** Nodes that reported a mount of the target in the interval. */
  nodes: number;
  /** Of those, nodes moving data of this mode (ops > 0). */
  activeNodes: number;
  /** Mean over active nodes. */
  backlog: number;
  /** Ops-weighted mean RTT of this mode's RPCs (READ or WRITE) on the target; undefined without ops. */
  rttMs: number | undefined;
  /** Mean over active nodes of requests in flight / slot count. */
  slotUtilization: number;
  /** Summed over nodes. */
  bytesPerSecond: number;
}

export interface PoolView {
  limit: number;
  leases: number;
  waiters: number;
}

export interface AimdState {
  /** Steps left to hold after a decrease. */
  hold: number;
}

export interface AimdDecision {
  limit: number;
  reason: string;
  state: AimdState;
}

/** A mount belongs to a target when its mountpoint is the target's prefix or under it. */
export function mountBelongs(mountpoint: string, prefix: string): boolean {
  const p = prefix.endsWith('/') && prefix.length > 1 ? prefix.slice(0, -1) : prefix;
  return mountpoint === p || mountpoint.startsWith(p + '/') || (p !== '/' && p.startsWith(mountpoint + '/'));
}

const OP: Record<Mode, string> = { write: 'WRITE', read: 'READ' };

/**
 * Adds up the target's mounts over the latest batch of each node. A node with several mounts of
 * the target counts once, with its busiest mount. Rates come from the agent (NfsMountRates):
 * backlog_queue_length and inflight_requests are the kernel's backlog/inflight sums divided by
 * sends over the interval, slot_table_utilization is inflight / max_slots.
 */
export function aggregateTelemetry(batches: readonly TelemetryBatch[], prefix: string, mode: Mode, rpcSlots: number): StorageSignals {
  let nodes = 0;
  let active = 0;
  let backlog = 0;
  let util = 0;
  let bytes = 0;
  let rttSum = 0;
  let rttOps = 0;
  for (const batch of batches) {
    const mounts = batch.nfsMounts.filter((m) => mountBelongs(m.mountpoint, prefix));
    if (mounts.length === 0) continue;
    nodes++;
    let busiest: NfsMountTelemetry | undefined;
    let busiestOps = 0;
    for (const m of mounts) {
      const r = m.rates;
      bytes += (mode === 'write' ? r?.writeBytesPerSecond : r?.readBytesPerSecond) ?? 0;
      const op = r?.ops.find((o) => o.op === OP[mode]);
      if (op && op.opsPerSecond > 0) {
        if (op.avgRttMs !== undefined) {
          rttSum += op.avgRttMs * op.opsPerSecond;
          rttOps += op.opsPerSecond;
        }
        if (op.opsPerSecond > busiestOps) {
          busiest = m;
          busiestOps = op.opsPerSecond;
        }
      }
    }
    if (!busiest) continue;
    active++;
    const r = busiest.rates!;
    backlog += r.backlogQueueLength ?? 0;
    util += r.slotTableUtilization ?? (r.inflightRequests !== undefined ? r.inflightRequests / rpcSlots : 0);
  }
  return {
    nodes,
    activeNodes: active,
    backlog: active ? backlog / active : 0,
    rttMs: rttOps ? rttSum / rttOps : undefined,
    slotUtilization: active ? util / active : 0,
    bytesPerSecond: bytes,
  };
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));

/**
 * One AIMD step. Multiplicative decrease when the target is degraded (down to its degraded
 * cap) or congested (the RTT above its mark: the server queues); increase only when the
 * pool itself holds writers back (waiters queue, every slot is taken) and the target still has
 * bandwidth to give: toward the size the measured bytes per lease say would fill it, at least
 * `increase` and at most doubling per step; otherwise hold. Always within [min, max].
 */
export function aimdStep(pool: PoolView, bounds: PoolBounds, capacityBytesPerSecond: number, signals: StorageSignals | undefined, degraded: boolean, state: AimdState, p: AimdParams = DEFAULT_AIMD): AimdDecision {
  const clamp = (n: number) => Math.min(bounds.max, Math.max(bounds.min, Math.round(n)));
  const limit = clamp(pool.limit);
  if (degraded) {
    const cap = clamp(bounds.max * p.degradedShare);
    const next = clamp(Math.min(cap, limit * p.decrease));
    return { limit: next, reason: `decrease: target degraded (health), cap ${cap}`, state: { hold: p.holdAfterDecrease } };
  }
  // Congestion is the server queueing: the RTT of the mode's RPCs above its mark. A deep client
  // backlog or a full slot table with a low RTT is one writer flushing its shard (close/fsync
  // hands the whole file to the transport at once) as fast as its node's transport allows:
  // fewer writers would not make it faster, so those two alone do not shrink the pool; they are
  // named in the reason when they come with a high RTT.
  const congestion: string[] = [];
  if (signals && signals.activeNodes > 0 && signals.rttMs !== undefined && signals.rttMs > p.rttHighMs) {
    congestion.push(`rtt ${fmt(signals.rttMs)} ms > ${p.rttHighMs}`);
    if (signals.backlog > p.backlogHigh) congestion.push(`backlog ${fmt(signals.backlog)} > ${p.backlogHigh}`);
    if (signals.slotUtilization > p.slotUtilizationHigh) congestion.push(`slots ${fmt(signals.slotUtilization * 100)}% > ${fmt(p.slotUtilizationHigh * 100)}%`);
  }
  if (state.hold > 0) {
    return { limit, reason: `hold: after decrease${congestion.length ? ` (${congestion.join(', ')})` : ''}`, state: { hold: state.hold - 1 } };
  }
  if (congestion.length) {
    return { limit: clamp(limit * p.decrease), reason: `decrease: ${congestion.join(', ')}`, state: { hold: p.holdAfterDecrease } };
  }
  const moved = signals?.bytesPerSecond ?? 0;
  if (pool.waiters > 0 && pool.leases >= limit) {
    if (moved < capacityBytesPerSecond * p.capacityHeadroom) {
      // Each lease moves about moved / leases; the pool that would fill the headroom is that
      // many times larger. Grow toward it, at least by `increase` and at most doubling per step
      // (the telemetry lags the limit by about an interval, like TCP's slow start).
      const perLease = pool.leases > 0 ? moved / pool.leases : 0;
      const fill = perLease > 0 ? Math.ceil((capacityBytesPerSecond * p.capacityHeadroom) / perLease) : limit + p.increase;
      const next = clamp(Math.min(limit * 2, Math.max(limit + p.increase, fill)));
      return { limit: next, reason: `increase: ${pool.waiters} waiting, ${fmt(moved / 1e9)} of ${fmt(capacityBytesPerSecond / 1e9)} GB/s`, state };
    }
    return { limit, reason: `hold: at capacity (${fmt(moved / 1e9)} of ${fmt(capacityBytesPerSecond / 1e9)} GB/s)`, state };
  }
  return { limit, reason: 'hold: pool not the bottleneck', state };
}

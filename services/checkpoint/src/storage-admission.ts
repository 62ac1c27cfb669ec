// Storage admission policy, pure: which NFS client telemetry belongs to a target, what it adds
// up to, which waiters only the pool's limit holds back, and the AIMD step that sets the pool
// size from them. The storage service runs it every control interval; `pnpm bench:checkpoint`
// imports the SAME functions (and the same Redis lease store) for its admitted arm, so the
// benchmark measures this code, not a copy.
import type { NfsMountTelemetry, TelemetryBatch } from '@gantry/proto';
import type { PoolState } from '@gantry/store';

export type Mode = 'write' | 'read';

export interface PoolBounds {
  /** Pool size before the first controller step. */
  initial: number;
  min: number;
  max: number;
  /**
   * Most leases of the pool the holders on one node may hold at once (0: no cap). A node's NFS
   * transport (its RPC slot table, its NIC) is its own: one writer's flush fills it, and a second
   * writer's RPCs only queue behind the first's in the node's backlog.
   */
  perNode: number;
  /**
   * The pool starts (and an idle pool decays back) at no less than `perNode` x the nodes that
   * report a mount of the target. For reads (the default there): a reader keeps only its
   * readahead in flight (2 x 15 RPCs, under the 128-slot table), so one per node cannot build a
   * backlog, and holding some nodes back only delays the restart. Not for writes (their
   * default): a flush hands the whole shard to the transport, so every admitted writer fills its
   * node's slot table and backlog, and a save that starts on every node at once is the backlog
   * the pool is there to spread. The configuration sets it per mode; absent here: false.
   */
  initialCoversNodes?: boolean;
}

export interface AimdParams {
  /**
   * Least added per step while the pool is the bottleneck (holders on nodes under their cap
   * wait, every slot is used); the step is larger when more nodes wait (one lease more per
   * waiting holder the node cap lets through, at most doubling per step).
   */
  increase: number;
  /** Multiplied on congestion (0..1). */
  decrease: number;
  /** Named with a congestion decrease: mean transport backlog (RPCs waiting for a slot) per writing node above this. */
  backlogHigh: number;
  /** Congestion, with the delivery below `capacityHeadroom`: RTT of the mode's RPCs (READ or WRITE) above this, in ms. */
  rttHighMs: number;
  /**
   * Mean slot table utilisation of the active nodes above this (0..1): their transports are
   * saturated. Named with a congestion decrease, and one half of the saturation rule
   * (`saturatedShare`).
   */
  slotUtilizationHigh: number;
  /**
   * Congestion without a high RTT, for targets that configure their clients' link speed: the
   * active nodes' slot tables full (`slotUtilizationHigh`) with a backlog above `backlogHigh`,
   * while the target delivers less than this share of what the server and those nodes' links
   * allow, both over the interval and while they send (Little's law: RPCs in flight x RPC size
   * / RTT per node). Slot tables full at a fraction of the bandwidth is the 504-GPU report's
   * collapse (16 % of the write bandwidth); with small RPCs it comes with an RTT below
   * `rttHighMs` (128 RPCs of 64 KiB at 16 % of 250 GB/s over 63 nodes is 13 ms).
   */
  saturatedShare: number;
  /**
   * A target moving at least this share of its capacity (0..1) is delivering: a high RTT then is
   * the standing queue of every node keeping its transport busy, not congestion.
   */
  capacityHeadroom: number;
  /** Steps to hold after a decrease: telemetry lags the limit by about one interval. */
  holdAfterDecrease: number;
  /** While the health detector flags the target: the limit is at most this share of max. */
  degradedShare: number;
  /**
   * Consecutive idle steps (no leases, no waiters, no bytes of the mode on the target) after
   * which the limit starts to decay toward the pool's initial size, halving the distance each
   * further idle step: TCP's congestion-window validation (RFC 2861, RFC 7661) for a pool. A
   * limit learned in the last save says nothing about the next one minutes later, and a stale
   * large limit lets every node flush at once.
   */
  idleSteps: number;
}

export const DEFAULT_AIMD: AimdParams = {
  increase: 2,
  decrease: 0.7,
  backlogHigh: 32,
  rttHighMs: 20,
  slotUtilizationHigh: 0.95,
  // Half: a node whose own link is its bottleneck delivers about 0.9 of it by Little's law (the
  // RTT also holds the server's round trip), and the while-sending figure leaves out a save
  // that began partway through the interval; the report's collapse was at 16 %.
  saturatedShare: 0.5,
  capacityHeadroom: 0.9,
  holdAfterDecrease: 1,
  degradedShare: 0.25,
  // Telemetry covers the interval before the step, so the step after the last release can
  // still show that save's bytes; three idle steps are at least two whole intervals in which
  // nothing of the mode moved (20-30 s at the default 10 s interval, shorter than the minutes
  // between checkpoints, so every save starts from the initial size).
  idleSteps: 3,
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
  /**
   * What the active nodes move while they send, by Little's law: per node, its RPCs in flight x
   * its mean RPC size (bytes / ops of the mode) / its RTT, summed. Unlike `bytesPerSecond` it
   * does not fall when the traffic filled only part of the interval. Undefined without RTTs.
   */
  sendingBytesPerSecond?: number | undefined;
}

export interface PoolView {
  limit: number;
  leases: number;
  waiters: number;
  /** Of the waiters, those the per-node cap lets through: only the limit holds them back (`readyWaiters`). */
  ready: number;
}

export interface AimdState {
  /** Steps left to hold after a decrease. */
  hold: number;
  /** Consecutive idle steps so far. */
  idle: number;
}

/**
 * The state as stored beside the pool's limit (`StorageLeaseStore.setLimit`); missing or bad
 * counters start from zero, which only delays a decay or ends a hold early.
 */
export function aimdStateOf(saved: Readonly<Record<string, number>> | undefined): AimdState {
  const count = (n: number | undefined) => (n !== undefined && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
  return { hold: count(saved?.hold), idle: count(saved?.idle) };
}

export interface AimdDecision {
  limit: number;
  reason: string;
  state: AimdState;
}

/** What a target can move in one mode. */
export interface TargetCapacity {
  /** The server's capacity in the mode. */
  bytesPerSecond: number;
  /** One client node's link (its NIC), when configured: what one node can move at most. */
  clientBytesPerSecond?: number | undefined;
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
  let sending: number | undefined;
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
    const u = r.slotTableUtilization ?? (r.inflightRequests !== undefined ? r.inflightRequests / rpcSlots : 0);
    backlog += r.backlogQueueLength ?? 0;
    util += u;
    const op = r.ops.find((o) => o.op === OP[mode])!;
    const moved = (mode === 'write' ? r.writeBytesPerSecond : r.readBytesPerSecond) ?? 0;
    if (op.avgRttMs !== undefined && op.avgRttMs > 0 && moved > 0) {
      const inflight = r.inflightRequests ?? u * rpcSlots;
      sending = (sending ?? 0) + (inflight * (moved / op.opsPerSecond)) / (op.avgRttMs / 1000);
    }
  }
  return {
    nodes,
    activeNodes: active,
    backlog: active ? backlog / active : 0,
    rttMs: rttOps ? rttSum / rttOps : undefined,
    slotUtilization: active ? util / active : 0,
    bytesPerSecond: bytes,
    sendingBytesPerSecond: sending,
  };
}

/**
 * How many of the waiters (in queue order, each with its node) the per-node cap lets through,
 * given the nodes of the leases held: the waiters that only the pool's limit holds back. The
 * same walk as the lease store's grantable() (libs/store/src/lua/storage-pool.lua) without the
 * limit; a holder with no node is never capped.
 */
export function readyWaiters(leaseNodes: readonly (string | undefined)[], waiterNodes: readonly (string | undefined)[], perNode: number): number {
  if (perNode <= 0) return waiterNodes.length;
  const held = new Map<string, number>();
  for (const n of leaseNodes) if (n !== undefined) held.set(n, (held.get(n) ?? 0) + 1);
  let ready = 0;
  for (const n of waiterNodes) {
    if (n === undefined) ready++;
    else if ((held.get(n) ?? 0) < perNode) {
      ready++;
      held.set(n, (held.get(n) ?? 0) + 1);
    }
  }
  return ready;
}

/** What the controller sees of a pool: its size, and how many waiters only the limit holds back. */
export function poolView(state: PoolState, limit: number, perNode: number): PoolView {
  return {
    limit,
    leases: state.leases.length,
    waiters: state.waiters.length,
    ready: readyWaiters(state.leases.map((l) => l.holder.node), state.waiters.map((w) => w.holder.node), perNode),
  };
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));

/**
 * The size a pool starts from: `initial`, or with `initialCoversNodes` at least one share per
 * node that reports a mount of the target; within [min, max].
 */
export function startSize(bounds: Pick<PoolBounds, 'initial' | 'min' | 'max'> & Partial<Pick<PoolBounds, 'perNode' | 'initialCoversNodes'>>, signals: Pick<StorageSignals, 'nodes'> | undefined): { size: number; why: string } {
  const clamp = (n: number) => Math.min(bounds.max, Math.max(bounds.min, Math.round(n)));
  const covers = bounds.initialCoversNodes && (bounds.perNode ?? 0) > 0 && signals ? bounds.perNode! * signals.nodes : 0;
  if (covers > bounds.initial && clamp(covers) > clamp(bounds.initial)) return { size: clamp(covers), why: ` (${bounds.perNode} per node x ${signals!.nodes} nodes)` };
  return { size: clamp(bounds.initial), why: '' };
}

/**
 * One AIMD step. Multiplicative decrease when the target is degraded (down to its degraded
 * cap) or congested: its RPCs' RTT above the mark while it delivers less than `capacityHeadroom`
 * of its capacity, or (with the clients' link speed configured) the active nodes' slot tables
 * full with a backlog while it delivers less than `saturatedShare` of what the server and their
 * links allow (queueing that does not move bytes, as the 504-GPU report saw: slot tables full
 * at 16 % of the write bandwidth). An idle pool decays toward its initial size (`idleSteps`,
 * `startSize`). Increase when the limit, not the per-node cap, holds holders back
 * (`pool.ready` waiting, every slot taken): by one lease per such waiter, at least `increase`
 * and at most doubling per step. Otherwise hold. Always within [min, max].
 *
 * A deep server queue while the target moves its capacity is not a reason to shrink: with one
 * lease per node, fewer leases leave nodes idle that still have shards to write, and those
 * finish alone at the end at their own transport's speed, with the server half idle.
 */
export function aimdStep(pool: PoolView, bounds: Pick<PoolBounds, 'initial' | 'min' | 'max'> & Partial<Pick<PoolBounds, 'perNode' | 'initialCoversNodes'>>, capacity: number | TargetCapacity, signals: StorageSignals | undefined, degraded: boolean, state: AimdState, p: AimdParams = DEFAULT_AIMD): AimdDecision {
  const { bytesPerSecond: capacityBytesPerSecond, clientBytesPerSecond } = typeof capacity === 'number' ? { bytesPerSecond: capacity, clientBytesPerSecond: undefined } : capacity;
  const clamp = (n: number) => Math.min(bounds.max, Math.max(bounds.min, Math.round(n)));
  const limit = clamp(pool.limit);
  if (degraded) {
    const cap = clamp(bounds.max * p.degradedShare);
    const next = clamp(Math.min(cap, limit * p.decrease));
    return { limit: next, reason: `decrease: target degraded (health), cap ${cap}`, state: { hold: p.holdAfterDecrease, idle: 0 } };
  }
  // Idle: nothing held, nothing asked, nothing of the mode moved (without telemetry there is no
  // telemetry-backed evidence of idleness, so no decay).
  if (pool.leases === 0 && pool.waiters === 0 && signals && signals.activeNodes === 0 && signals.bytesPerSecond === 0) {
    const idle = state.idle + 1;
    const { size: initial, why } = startSize(bounds, signals);
    const toward = `toward the initial ${initial}${why}`;
    if (limit === initial) return { limit, reason: `hold: idle at the initial size${why}`, state: { hold: 0, idle } };
    if (idle < p.idleSteps) return { limit, reason: `hold: idle ${idle} of ${p.idleSteps} steps before the limit decays ${toward}`, state: { hold: 0, idle } };
    // Half the distance per step (RFC 2861 halves cwnd per idle RTO), rounded toward the initial size.
    const next = initial + Math.sign(limit - initial) * Math.floor(Math.abs(limit - initial) / 2);
    return { limit: next, reason: `decay: idle ${idle} steps, ${toward}`, state: { hold: 0, idle } };
  }
  state = { ...state, idle: 0 };
  const moved = signals?.bytesPerSecond ?? 0;
  const rate = `${fmt(moved / 1e9)} of ${fmt(capacityBytesPerSecond / 1e9)} GB/s`;
  // The backlog and full slots alone do not shrink the pool: close/fsync hands a whole shard to
  // the transport at once, so one flushing writer fills its node's slot table and backlog with
  // a low RTT; fewer writers would not make it faster. They count as congestion when the bytes
  // do not come with them (below); otherwise they are named in the reason of a decrease.
  const congestion: string[] = [];
  const saturated = signals !== undefined && signals.activeNodes > 0 && signals.slotUtilization > p.slotUtilizationHigh && signals.backlog > p.backlogHigh;
  const named = () => {
    if (signals!.backlog > p.backlogHigh) congestion.push(`backlog ${fmt(signals!.backlog)} > ${p.backlogHigh}`);
    if (signals!.slotUtilization > p.slotUtilizationHigh) congestion.push(`slots ${fmt(signals!.slotUtilization * 100)}% > ${fmt(p.slotUtilizationHigh * 100)}%`);
  };
  if (signals && signals.activeNodes > 0 && signals.rttMs !== undefined && signals.rttMs > p.rttHighMs && moved < capacityBytesPerSecond * p.capacityHeadroom) {
    congestion.push(`rtt ${fmt(signals.rttMs)} ms > ${p.rttHighMs} at ${rate}`);
    named();
  } else if (saturated && clientBytesPerSecond !== undefined && signals.sendingBytesPerSecond !== undefined) {
    // Saturated transports that the server and the nodes' links should let move more: the
    // queueing is not a link or a standing queue at full delivery. Without the clients' link
    // speed this cannot be told apart from a few nodes each at its own link's limit, so the
    // rule needs it.
    const allowed = Math.min(capacityBytesPerSecond, signals.activeNodes * clientBytesPerSecond);
    const bar = allowed * p.saturatedShare;
    if (moved < bar && signals.sendingBytesPerSecond < bar) {
      congestion.push(`${fmt(moved / 1e9)} GB/s (${fmt(signals.sendingBytesPerSecond / 1e9)} while sending) < ${fmt(p.saturatedShare * 100)}% of ${fmt(allowed / 1e9)} GB/s that ${signals.activeNodes} nodes and the server allow`);
      named();
    }
  }
  if (state.hold > 0) {
    return { limit, reason: `hold: after decrease${congestion.length ? ` (${congestion.join(', ')})` : ''}`, state: { hold: state.hold - 1, idle: 0 } };
  }
  if (congestion.length) {
    return { limit: clamp(limit * p.decrease), reason: `decrease: ${congestion.join(', ')}`, state: { hold: p.holdAfterDecrease, idle: 0 } };
  }
  if (pool.ready > 0 && pool.leases >= limit) {
    // Telemetry lags the limit by about an interval: at most doubling per step, like TCP's slow start.
    const next = clamp(Math.min(limit * 2, Math.max(limit + p.increase, pool.leases + pool.ready)));
    return { limit: next, reason: `increase: ${pool.ready} waiting on nodes under their cap, ${rate}`, state };
  }
  return { limit, reason: 'hold: pool not the bottleneck', state };
}

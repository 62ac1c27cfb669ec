// Per-interval NFS client figures from two mountstats snapshots: throughput, op and
// retransmission rates, average queue/RTT/execute time per op, and the RPC transport's
// backlog and slot-table use. The transport's *_u columns are sums sampled at every send,
// so their deltas divided by the delta of sends are averages over the interval.
import { counterDelta, ratio } from '../counters.js';
import type { NfsMountStats, NfsOpStats } from './mountstats.js';

export interface NfsOpRates {
  op: string;
  opsPerSec: number;
  retransPerSec?: number;
  avgQueueMs?: number;
  avgRttMs?: number;
  avgExecuteMs?: number;
  bytesSentPerSec?: number;
  bytesReceivedPerSec?: number;
}

export interface NfsMountRates {
  readBytesPerSec?: number;
  writeBytesPerSec?: number;
  opsPerSec?: number;
  retransPerSec?: number;
  majorTimeoutsPerSec?: number;
  errorsPerSec?: number;
  avgQueueMs?: number;
  avgRttMs?: number;
  avgExecuteMs?: number;
  /** Average RPC backlog queue length seen by a send in the interval. */
  backlogQueueLength?: number;
  /** Average requests in flight seen by a send in the interval. */
  inflightRequests?: number;
  /** inflightRequests / slot table size. */
  slotTableUtilization?: number;
  ops: NfsOpRates[];
}

export interface NfsDeriveOptions {
  /**
   * Slot table size by transport when computing utilisation. The xprt line only reports
   * the high-water mark of slots used, not the table size, so this is configuration: 128
   * for TCP (the usual sunrpc.tcp_slot_table_entries tuning; the kernel's own TCP table
   * grows dynamically up to tcp_max_slot_table_entries), 16 for UDP (RPC_DEF_SLOT_TABLE),
   * 128 for RDMA (RPCRDMA_DEF_SLOT_TABLE).
   */
  slotTableSize?: Partial<Record<string, number>>;
}

export const DEFAULT_SLOT_TABLE_SIZE: Readonly<Record<string, number>> = { tcp: 128, udp: 16, rdma: 128 };

export function mountKey(m: Pick<NfsMountStats, 'device' | 'mountpoint' | 'fstype'>): string {
  return `${m.mountpoint}\u0000${m.device}\u0000${m.fstype}`;
}

function rate(d: number | undefined, seconds: number): number | undefined {
  return d === undefined ? undefined : d / seconds;
}

function opRates(prev: NfsOpStats | undefined, cur: NfsOpStats, seconds: number): NfsOpRates | undefined {
  const dOps = counterDelta(prev?.ops, cur.ops);
  if (!dOps) return undefined;
  const dTrans = counterDelta(prev?.transmissions, cur.transmissions);
  const out: NfsOpRates = { op: cur.op, opsPerSec: dOps / seconds };
  const set = <K extends keyof NfsOpRates>(k: K, v: NfsOpRates[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('retransPerSec', dTrans === undefined ? undefined : Math.max(0, dTrans - dOps) / seconds);
  // Time sums may be "negative" (see parseCounter); a plain difference is still right.
  set('avgQueueMs', ratio(cur.queueMs - (prev?.queueMs ?? 0), dOps));
  set('avgRttMs', ratio(cur.rttMs - (prev?.rttMs ?? 0), dOps));
  set('avgExecuteMs', ratio(cur.executeMs - (prev?.executeMs ?? 0), dOps));
  set('bytesSentPerSec', rate(counterDelta(prev?.bytesSent, cur.bytesSent), seconds));
  set('bytesReceivedPerSec', rate(counterDelta(prev?.bytesReceived, cur.bytesReceived), seconds));
  return out;
}

/** Rates for one mount; undefined fields when the previous snapshot lacks the counter. */
export function deriveNfsMountRates(
  prev: NfsMountStats,
  cur: NfsMountStats,
  seconds: number,
  options: NfsDeriveOptions = {},
): NfsMountRates {
  const out: NfsMountRates = { ops: [] };
  if (!(seconds > 0)) return out;
  const set = <K extends keyof NfsMountRates>(k: K, v: NfsMountRates[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  // The bytes: line counts what the server returned/accepted; fall back to READ/WRITE RPC
  // payloads when a kernel prints no bytes: line.
  set('readBytesPerSec', rate(counterDelta(prev.bytes['serverReadBytes'], cur.bytes['serverReadBytes']), seconds)
    ?? rate(counterDelta(prev.ops.get('READ')?.bytesReceived, cur.ops.get('READ')?.bytesReceived), seconds));
  set('writeBytesPerSec', rate(counterDelta(prev.bytes['serverWriteBytes'], cur.bytes['serverWriteBytes']), seconds)
    ?? rate(counterDelta(prev.ops.get('WRITE')?.bytesSent, cur.ops.get('WRITE')?.bytesSent), seconds));

  let ops = 0, retrans = 0, timeouts = 0, errors = 0, queue = 0, rtt = 0, exec = 0;
  let haveErrors = false;
  for (const c of cur.ops.values()) {
    const p = prev.ops.get(c.op);
    if (!p) continue;
    const dOps = counterDelta(p.ops, c.ops) ?? 0;
    ops += dOps;
    retrans += Math.max(0, (counterDelta(p.transmissions, c.transmissions) ?? 0) - dOps);
    timeouts += counterDelta(p.majorTimeouts, c.majorTimeouts) ?? 0;
    if (c.errors !== undefined && p.errors !== undefined) {
      haveErrors = true;
      errors += counterDelta(p.errors, c.errors) ?? 0;
    }
    if (dOps > 0) {
      queue += c.queueMs - p.queueMs;
      rtt += c.rttMs - p.rttMs;
      exec += c.executeMs - p.executeMs;
    }
    const r = opRates(p, c, seconds);
    if (r) out.ops.push(r);
  }
  out.opsPerSec = ops / seconds;
  out.retransPerSec = retrans / seconds;
  out.majorTimeoutsPerSec = timeouts / seconds;
  if (haveErrors) out.errorsPerSec = errors / seconds;
  set('avgQueueMs', ratio(queue, ops));
  set('avgRttMs', ratio(rtt, ops));
  set('avgExecuteMs', ratio(exec, ops));

  const pt = prev.transport;
  const ct = cur.transport;
  if (pt && ct && pt.protocol === ct.protocol) {
    const dSends = counterDelta(pt.sends, ct.sends);
    set('backlogQueueLength', ratio(counterDelta(pt.backlogSum, ct.backlogSum), dSends));
    const inflight = ratio(counterDelta(pt.inflightSum, ct.inflightSum), dSends);
    set('inflightRequests', inflight);
    const table = options.slotTableSize?.[ct.protocol] ?? DEFAULT_SLOT_TABLE_SIZE[ct.protocol];
    set('slotTableUtilization', ratio(inflight, table));
  }
  return out;
}

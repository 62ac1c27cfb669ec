// Per-interval RDMA port and NIC rates from two snapshots.
import { counterRate, type CounterOptions } from '../counters.js';
import type { RdmaPortStats } from './sysfs.js';

export interface RdmaPortRates {
  receiveBytesPerSec?: number;
  transmitBytesPerSec?: number;
  receivePacketsPerSec?: number;
  transmitPacketsPerSec?: number;
  symbolErrorsPerSec?: number;
  linkDownedPerSec?: number;
  receiveErrorsPerSec?: number;
  transmitDiscardsPerSec?: number;
  /** port_xmit_wait ticks per second: time the port had data but no credits (congestion). */
  transmitWaitPerSec?: number;
  outOfSequencePerSec?: number;
  /** RoCE adaptive retransmissions plus their timeouts. */
  retransmissionsPerSec?: number;
  localAckTimeoutsPerSec?: number;
  /** Congestion notification packets handled (roce_slow_restart_cnps, np_cnp_sent, rp_cnp_handled). */
  congestionNotificationsPerSec?: number;
  linkErrorRecoveryPerSec?: number;
}

export function rdmaPortKey(p: Pick<RdmaPortStats, 'device' | 'port'>): string {
  return `${p.device}/${p.port}`;
}

// PMA counters are 64-bit on every HCA the agent targets (extended counters); a decrease
// is a reset (driver reload, `perfquery -R`), counted from zero.
const OPTS: CounterOptions = { bits: 64, onReset: 'from-zero' };

function sum(rec: Record<string, number>, names: readonly string[]): number | undefined {
  let total: number | undefined;
  for (const n of names) {
    const v = rec[n];
    if (v !== undefined) total = (total ?? 0) + v;
  }
  return total;
}

export function deriveRdmaPortRates(prev: RdmaPortStats, cur: RdmaPortStats, seconds: number): RdmaPortRates {
  const out: RdmaPortRates = {};
  const c = (name: string): number | undefined => counterRate(prev.counters[name], cur.counters[name], seconds, OPTS);
  const h = (names: readonly string[]): number | undefined =>
    counterRate(sum(prev.hwCounters, names), sum(cur.hwCounters, names), seconds, OPTS);
  const set = <K extends keyof RdmaPortRates>(k: K, v: number | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  const rx = c('port_rcv_data');
  const tx = c('port_xmit_data');
  // port_rcv_data / port_xmit_data count 32-bit words, not bytes (IBA PortCounters).
  set('receiveBytesPerSec', rx === undefined ? undefined : rx * 4);
  set('transmitBytesPerSec', tx === undefined ? undefined : tx * 4);
  set('receivePacketsPerSec', c('port_rcv_packets'));
  set('transmitPacketsPerSec', c('port_xmit_packets'));
  set('symbolErrorsPerSec', c('symbol_error'));
  set('linkDownedPerSec', c('link_downed'));
  set('receiveErrorsPerSec', c('port_rcv_errors'));
  set('transmitDiscardsPerSec', c('port_xmit_discards'));
  set('transmitWaitPerSec', c('port_xmit_wait'));
  set('linkErrorRecoveryPerSec', c('link_error_recovery'));
  set('outOfSequencePerSec', h(['out_of_sequence']));
  set('retransmissionsPerSec', h(['roce_adp_retrans', 'roce_adp_retrans_to']));
  set('localAckTimeoutsPerSec', h(['local_ack_timeout_err']));
  set('congestionNotificationsPerSec', h(['roce_slow_restart_cnps', 'np_cnp_sent', 'rp_cnp_handled']));
  return out;
}

export interface NicRates {
  receiveBytesPerSec?: number;
  transmitBytesPerSec?: number;
  receivePausePerSec?: number;
  transmitPausePerSec?: number;
  receiveDiscardsPerSec?: number;
  receiveOutOfBufferPerSec?: number;
}

/** First counter name the NIC has, so mlx5 *_phy names win over the generic ones. */
function pick(rec: Record<string, number>, names: readonly string[]): string | undefined {
  return names.find((n) => rec[n] !== undefined);
}

/** Sum of the per-priority counters (rx_prio3_pause, ...): PFC pauses on a RoCE lossless class. */
function prioSum(rec: Record<string, number>, pattern: RegExp): number | undefined {
  let total: number | undefined;
  for (const [k, v] of Object.entries(rec)) if (pattern.test(k)) total = (total ?? 0) + v;
  return total;
}

export function deriveNicRates(prev: Record<string, number>, cur: Record<string, number>, seconds: number): NicRates {
  const out: NicRates = {};
  const one = (names: readonly string[]): number | undefined => {
    const n = pick(cur, names);
    return n === undefined ? undefined : counterRate(prev[n], cur[n], seconds, OPTS);
  };
  const pause = (dir: 'rx' | 'tx'): number | undefined => {
    const pfc = new RegExp(`^${dir}_prio\\d+_pause$`);
    const p = prioSum(prev, pfc);
    const c = prioSum(cur, pfc);
    const global = one([`${dir}_pause_ctrl_phy`, `${dir}_global_pause`]);
    const prio = counterRate(p, c, seconds, OPTS);
    return prio === undefined ? global : (global ?? 0) + prio;
  };
  const set = <K extends keyof NicRates>(k: K, v: number | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('receiveBytesPerSec', one(['rx_bytes_phy', 'rx_bytes']));
  set('transmitBytesPerSec', one(['tx_bytes_phy', 'tx_bytes']));
  set('receivePausePerSec', pause('rx'));
  set('transmitPausePerSec', pause('tx'));
  set('receiveDiscardsPerSec', one(['rx_discards_phy', 'rx_dropped']));
  set('receiveOutOfBufferPerSec', one(['rx_out_of_buffer']));
  return out;
}

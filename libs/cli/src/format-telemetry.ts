// Human-readable views of a node's host telemetry (GPU, NFS, RDMA, NIC tables and a compact
// history) and of its event log (XIDs and state transitions). Pure functions, like format.ts.
//
// Units: values are first brought to Prometheus-like base units (bytes, bytes per second,
// ratios 0..1), then shown in human units (GiB, MB/s, Gb/s, %). A proto3 `optional` that is
// absent was not reported and prints as "-", never as 0.
import { NodeState, XidSeverity, nodeStateName, type GetNodeTelemetryResponse, type GpuTelemetry, type NfsMountTelemetry, type NicTelemetry, type NodeHostEvent, type RdmaPortTelemetry, type TelemetryBatch, type XidEvent } from '@gantry/proto';
import { fields, formatTime, table } from './format.js';

// --- units ---

const MIB = 2 ** 20;
const GIB = 2 ** 30;

export const bytesFromMib = (mib: number | undefined): number | undefined => (mib === undefined ? undefined : mib * MIB);
const map = (v: number | undefined, f: (x: number) => number): number | undefined => (v === undefined ? undefined : f(v));

/** bytes -> "79.6" (GiB). */
export const gib = (bytes: number | undefined, digits = 1): string => fixed(map(bytes, (b) => b / GIB), digits);
/** bytes/s -> "12.3" (MB/s, decimal megabytes as storage tools print them). */
export const mbPerSec = (bps: number | undefined): string => fixed(map(bps, (b) => b / 1e6), 1);
/** bytes/s -> "97.12" (Gb/s, network bits). */
export const gbitPerSec = (bps: number | undefined): string => fixed(map(bps, (b) => (b * 8) / 1e9), 2);
/** ratio 0..1 -> "42" (%). */
export const percent = (ratio: number | undefined): string => fixed(map(ratio, (r) => r * 100), 0);

/** "-" when absent, else fixed-point. */
export function fixed(v: number | undefined, digits = 0): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

/** A rate or small number without trailing zeros: 0, 0.25, 12.5, 1234.57. */
export function num(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '-' : String(Number(v.toFixed(2)));
}

const yesNo = (b: boolean | undefined): string => (b === undefined ? '-' : b ? 'yes' : 'no');

/** "a/b", "-" when both are absent. */
function pair(a: string, b: string): string {
  return a === '-' && b === '-' ? '-' : `${a}/${b}`;
}

export function formatDuration(d: TelemetryBatch['interval']): string {
  if (!d) return '-';
  const s = d.seconds + d.nanos / 1e9;
  return `${Number(s.toFixed(3))}s`;
}

// --- GPUs ---

function throttle(g: GpuTelemetry): string {
  const fraction = g.rates?.throttleFraction ?? {};
  if (g.clockEventReasons.length > 0) {
    return g.clockEventReasons.map((r) => (fraction[r] !== undefined ? `${r}(${percent(fraction[r])}%)` : r)).join(',');
  }
  return g.clockEventReasonsMask === undefined ? '-' : g.clockEventReasonsMask === 0 ? 'none' : `0x${g.clockEventReasonsMask.toString(16)}`;
}

function nvlinkErrors(g: GpuTelemetry): string {
  if (g.nvlinks.length === 0) return '-';
  const counted = g.nvlinks.filter((l) => Object.keys(l.errors).length > 0);
  const errors = counted.length ? String(counted.reduce((n, l) => n + Object.values(l.errors).reduce((a, b) => a + b, 0), 0)) : '-';
  const down = g.nvlinks.filter((l) => !l.active).length;
  return down ? `${errors} (${down} down)` : errors;
}

export function gpuTable(gpus: GpuTelemetry[]): string {
  const rows = [...gpus]
    .sort((a, b) => a.index - b.index)
    .map((g) => [
      String(g.index),
      fixed(g.utilizationGpuPercent),
      pair(gib(bytesFromMib(g.memoryUsedMib)), gib(bytesFromMib(g.memoryTotalMib))),
      fixed(g.temperatureGpuCelsius),
      pair(fixed(g.powerDrawWatts), fixed(g.powerLimitWatts)),
      fixed(g.smClockMhz),
      pair(num(g.ecc?.volatileSingleBit), num(g.ecc?.volatileDoubleBit)),
      // Ampere and later remap rows; older GPUs retire pages instead.
      pair(yesNo(g.remappedRowsPending ?? g.retiredPagesPending), yesNo(g.remappedRowsFailure)),
      pair(num(g.pcieReplayCount), num(g.pcieLinkRecoveryCount)),
      nvlinkErrors(g),
      throttle(g),
    ]);
  return table(['GPU', 'UTIL %', 'MEM GiB', 'TEMP °C', 'POWER W', 'SM MHz', 'ECC SBE/DBE', 'ROWS PEND/FAIL', 'PCIE REPL/RECOV', 'NVLINK ERR', 'THROTTLE'], rows);
}

// --- NFS ---

export function nfsTable(mounts: NfsMountTelemetry[]): string {
  const rows = mounts.map((m) => {
    const r = m.rates;
    return [
      m.mountpoint,
      m.device || '-',
      m.transport?.protocol || '-',
      mbPerSec(r?.readBytesPerSecond),
      mbPerSec(r?.writeBytesPerSecond),
      num(r?.opsPerSecond),
      num(r?.retransmissionsPerSecond),
      num(r?.avgRttMs),
      num(r?.avgExecuteMs),
      num(r?.backlogQueueLength),
      percent(r?.slotTableUtilization),
    ];
  });
  return table(['MOUNTPOINT', 'SERVER:EXPORT', 'PROTO', 'READ MB/s', 'WRITE MB/s', 'OPS/s', 'RETRANS/s', 'RTT ms', 'EXEC ms', 'BACKLOG', 'SLOTS %'], rows);
}

// --- RDMA and NICs ---

/** A cumulative counter, with its current rate when it is rising: "12", "12 (+0.5/s)", "-". */
function counter(total: number | undefined, rate: number | undefined): string {
  if (total === undefined) return rate === undefined ? '-' : `${num(rate)}/s`;
  return rate ? `${total} (+${num(rate)}/s)` : String(total);
}

function sumOf(rec: Record<string, number>, names: string[]): number | undefined {
  const present = names.filter((n) => rec[n] !== undefined);
  return present.length ? present.reduce((s, n) => s + rec[n]!, 0) : undefined;
}

export function rdmaTable(ports: RdmaPortTelemetry[]): string {
  const rows = ports.map((p) => {
    const r = p.rates;
    return [
      `${p.device}/${p.port}`,
      p.linkLayer || '-',
      [p.state, p.physState].filter(Boolean).join('/') || '-',
      p.rateGbps !== undefined ? `${num(p.rateGbps)} Gb/s` : p.rateText || '-',
      gbitPerSec(r?.receiveBytesPerSecond),
      gbitPerSec(r?.transmitBytesPerSecond),
      counter(p.counters['symbol_error'], r?.symbolErrorsPerSecond),
      counter(p.counters['link_downed'], r?.linkDownedPerSecond),
      counter(p.counters['port_rcv_errors'], r?.receiveErrorsPerSecond),
      counter(p.hwCounters['out_of_sequence'], r?.outOfSequencePerSecond),
      counter(sumOf(p.hwCounters, ['roce_adp_retrans', 'roce_adp_retrans_to']), r?.retransmissionsPerSecond),
    ];
  });
  return table(['PORT', 'LINK', 'STATE', 'RATE', 'RX Gb/s', 'TX Gb/s', 'SYMBOL ERR', 'LINK DOWNED', 'RCV ERR', 'OUT OF SEQ', 'RETRANS'], rows);
}

export function nicTable(nics: NicTelemetry[]): string {
  const rows = nics.map((n) => {
    const r = n.rates;
    return [
      n.interface,
      gbitPerSec(r?.receiveBytesPerSecond),
      gbitPerSec(r?.transmitBytesPerSecond),
      num(r?.receivePausePerSecond),
      num(r?.transmitPausePerSecond),
      num(r?.receiveDiscardsPerSecond),
      num(r?.receiveOutOfBufferPerSecond),
    ];
  });
  return table(['INTERFACE', 'RX Gb/s', 'TX Gb/s', 'RX PAUSE/s', 'TX PAUSE/s', 'RX DISCARDS/s', 'OUT OF BUFFER/s'], rows);
}

// --- the whole batch ---

/** The telemetry part of `gantry node show`: batch facts, collector errors, then one table per kind. */
export function telemetryDetail(res: GetNodeTelemetryResponse, now: Date): string {
  const b = res.latest;
  if (!b) return 'Telemetry: no telemetry reported yet\n';
  const info: [string, string][] = [
    ['Time', formatTime(b.time, now)],
    ['Interval', formatDuration(b.interval)],
    ['Sequence', String(b.seq)],
    ['Dropped reports', String(b.droppedReports)],
  ];
  if (b.collectorErrors.length === 0) info.push(['Collector errors', 'none']);
  const errors = b.collectorErrors.map((e) => `  ${e.collector || '?'}: ${e.message.split('\n')[0]}\n`).join('');
  const sections = ['Telemetry:\n' + fields(info, '  ') + (errors ? '  Collector errors:\n' + errors.replace(/^ {2}/gm, '    ') : '')];
  if (b.gpus.length) sections.push('GPUs:\n' + gpuTable(b.gpus));
  if (b.nfsMounts.length) sections.push('NFS mounts:\n' + nfsTable(b.nfsMounts));
  if (b.rdmaPorts.length) sections.push('RDMA ports:\n' + rdmaTable(b.rdmaPorts));
  if (b.nics.length) sections.push('NICs:\n' + nicTable(b.nics));
  if (res.history.length) sections.push('History (newest first):\n' + historyTable([b, ...res.history]));
  return sections.join('\n');
}

function maxOf(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined);
  return v.length ? Math.max(...v) : undefined;
}

function meanOf(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
}

function sumDefined(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined);
  return v.length ? v.reduce((a, b) => a + b, 0) : undefined;
}

/** One row per batch (newest first): max GPU temperature, mean GPU utilisation, total NFS writes. */
export function historyTable(batches: TelemetryBatch[]): string {
  const rows = batches.map((b) => [
    b.time?.toISOString() ?? '-',
    String(b.seq),
    fixed(maxOf(b.gpus.map((g) => g.temperatureGpuCelsius))),
    fixed(meanOf(b.gpus.map((g) => g.utilizationGpuPercent))),
    mbPerSec(sumDefined(b.nfsMounts.map((m) => m.rates?.writeBytesPerSecond))),
    String(b.collectorErrors.length),
  ]);
  return table(['TIME', 'SEQ', 'MAX TEMP °C', 'AVG UTIL %', 'NFS WRITE MB/s', 'ERRORS'], rows);
}

// --- events ---

export function xidSeverityName(s: XidSeverity): string {
  return s === XidSeverity.XID_SEVERITY_UNSPECIFIED ? '' : (XidSeverity[s] ?? '').replace(/^XID_SEVERITY_/, '').toLowerCase();
}

/** "XID 79 GPU 3 (GPU-…) critical hardware ROBUST_…: <message> - action: RESTART_BM". */
export function xidText(x: XidEvent): string {
  const gpu = x.gpuIndex !== undefined ? `GPU ${x.gpuIndex}` : 'GPU ?';
  const id = x.gpuUuid || x.pciBusId;
  const head = [`XID ${x.xid}`, id ? `${gpu} (${id})` : gpu, xidSeverityName(x.severity), x.causeClass, x.mnemonic].filter(Boolean).join(' ');
  const notes = [x.fatal === undefined ? '' : x.fatal ? 'fatal' : 'nonfatal', x.inferred ? 'inferred' : ''].filter(Boolean);
  const proc = [x.pid !== undefined ? `pid ${x.pid}` : '', x.processName].filter(Boolean).join(' ');
  let text = head + (notes.length ? ` [${notes.join(', ')}]` : '');
  const message = x.message.split('\n')[0]!.trim();
  if (message) text += `: ${message}`;
  if (proc) text += ` [${proc}]`;
  if (x.immediateAction) text += ` - action: ${x.immediateAction}`;
  return text;
}

const stateName = (s: NodeState) => (s === NodeState.NODE_STATE_UNSPECIFIED ? '-' : nodeStateName(s));

/**
 * One line of `gantry node events`: the time, then the kind (XID or STATE) and what happened:
 * "… XID 79 GPU 3 (GPU-…) critical hardware …: message - action: RESTART_BM" or
 * "… STATE READY -> LOST: node gpu-01 lost: no heartbeat for 4s".
 */
export function nodeEventLine(ev: NodeHostEvent): string {
  const e = ev.event;
  let what = 'UNKNOWN event';
  let time = ev.time;
  if (e?.$case === 'xid') {
    what = xidText(e.xid);
    time ??= e.xid.time;
  } else if (e?.$case === 'transition') {
    const t = e.transition;
    const change = t.fromState === NodeState.NODE_STATE_UNSPECIFIED ? stateName(t.toState) : `${stateName(t.fromState)} -> ${stateName(t.toState)}`;
    what = `STATE ${change}${t.reason ? `: ${t.reason}` : ''}`;
    time ??= t.time;
  }
  return `${time?.toISOString() ?? '-'}  ${what}`;
}

/** Newest first (stable for equal times); events without a time go last. */
export function sortEventsNewestFirst(events: NodeHostEvent[]): NodeHostEvent[] {
  const t = (ev: NodeHostEvent) => (ev.time ?? (ev.event?.$case === 'xid' ? ev.event.xid.time : ev.event?.transition.time))?.getTime() ?? -Infinity;
  return events.map((ev, i) => ({ ev, i })).sort((a, b) => t(b.ev) - t(a.ev) || a.i - b.i).map(({ ev }) => ev);
}

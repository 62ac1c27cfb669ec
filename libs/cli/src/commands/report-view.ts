// `gantry report` as terminal tables: pure functions of the report, tested without a server.
import { failureClassName, type OperationsReport } from '@gantry/proto';
import { fields, table } from '../format.js';

export const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** Seconds as the report's tables show them: 42s, 11.0m, 10.8h, 2.5d. */
export function fmtSeconds(s: number): string {
  if (s >= 86_400 * 1.5) return `${(s / 86_400).toFixed(1)}d`;
  if (s >= 5_400) return `${(s / 3_600).toFixed(1)}h`;
  if (s >= 90) return `${(s / 60).toFixed(1)}m`;
  return `${s.toFixed(s < 10 ? 1 : 0)}s`;
}

/** Bytes/s in decimal units, as storage bandwidth is quoted: 250.0 GB/s. */
export function fmtRate(bps: number): string {
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
  let v = bps;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function fmtBytes(b: number): string {
  return fmtRate(b).replace('/s', '');
}

export const CHECKPOINT_HEAD = ['TARGET', 'CHECKPOINTS', 'BYTES', 'MEDIAN', 'PEAK', 'CAPACITY', 'PEAK/CAPACITY', 'LINKS', 'PEAK/LINKS'];

/** One row per storage target (the terminal table and the HTML page). */
export function checkpointRows(r: OperationsReport): string[][] {
  return (r.checkpoints?.targets ?? []).map((t) => [
    t.target || '(no target)', String(t.checkpoints), fmtBytes(t.bytes), fmtRate(t.medianBytesPerSecond), fmtRate(t.peakBytesPerSecond),
    t.capacityBytesPerSecond ? fmtRate(t.capacityBytesPerSecond) : '-', t.capacityBytesPerSecond ? pct(t.peakShareOfCapacity) : '-',
    t.linkBytesPerSecond ? fmtRate(t.linkBytesPerSecond) : '-', t.linkBytesPerSecond ? pct(t.peakShareOfLink) : '-',
  ]);
}

const day = (d: Date | undefined) => (d ? d.toISOString().replace('T', ' ').slice(0, 16) : '-');

export function reportView(r: OperationsReport): string {
  const days = r.from && r.to ? (r.to.getTime() - r.from.getTime()) / 86_400_000 : 0;
  const parts: string[] = [];
  parts.push(`Operations report ${day(r.from)} .. ${day(r.to)} UTC (${days.toFixed(days < 1 ? 2 : 0)} days): ${r.nodes} nodes, ${r.jobs} jobs created\n`);

  parts.push('\nFailures by XID\n');
  parts.push(r.xidFailures.length === 0 ? '  no XIDs in the window\n'
    : table(['XID', 'MNEMONIC', 'COMPONENT', 'RECOVERY', 'EVENTS', 'NODES'], r.xidFailures.map((x) => [
      String(x.xid), x.mnemonic || '-', x.component, x.failureClass ? failureClassName(x.failureClass) : '-', String(x.events), String(x.nodes),
    ]), '  '));
  if (r.components.length > 0) {
    parts.push('\nFailures by component\n');
    parts.push(table(['COMPONENT', 'EVENTS', 'SHARE'], r.components.map((c) => [c.component, String(c.events), pct(c.share)]), '  '));
  }
  parts.push('\nFailed attempts by class\n');
  parts.push(r.attemptFailures.length === 0 ? '  no failed attempts in the window\n'
    : table(['CLASS', 'ATTEMPTS'], r.attemptFailures.map((a) => [failureClassName(a.failureClass), String(a.attempts)]), '  '));

  const e = r.exclusions;
  parts.push('\nExclusions (quarantines and node-fault blames)\n');
  parts.push(fields([
    ['exclusions', `${e?.total ?? 0} (quarantines ${e?.quarantines ?? 0}, blames ${e?.blames ?? 0}) on ${e?.nodes ?? 0} nodes`],
    ['top 3 nodes', e && e.topNodes.length > 0 ? `${e.topNodes.map((n) => `${n.node} ${n.count}`).join(', ')}: ${pct(e.top3Share)} of exclusions` : '-'],
  ], '  '));

  const d = r.detection;
  parts.push('\nDetection\n');
  parts.push(fields([
    ['node-fault XIDs', String(d?.faultXids ?? 0)],
    ['suspected before the XID', d && d.faultXids > 0 ? `${d.suspectedBeforeXid} (${pct(d.suspectedBeforeXid / d.faultXids)})` : '-'],
    ['lead time, median', d && d.leadSeconds.length > 0 ? `${fmtSeconds(d.medianLeadSeconds)} (min ${fmtSeconds(Math.min(...d.leadSeconds))}, max ${fmtSeconds(Math.max(...d.leadSeconds))})` : '-'],
    ['detector suspicions', String(d?.suspicions ?? 0)],
    ['false alarms', `${d?.falseAlarms ?? 0} (${(d?.falseAlarmsPerDay ?? 0).toFixed(2)} per day)`],
  ], '  '));

  const c = r.retryChains;
  parts.push('\nRetry chains (jobs recovery retried)\n');
  parts.push(fields([
    ['chains', `${c?.chains ?? 0} over ${c?.attempts ?? 0} attempts: ${c?.succeeded ?? 0} succeeded, ${c?.failed ?? 0} failed, ${c?.open ?? 0} open`],
    ['success', c && c.succeeded + c.failed > 0 ? pct(c.successShare) : '-'],
    ['between retries', c && c.retries > 0 ? `median ${fmtSeconds(c.retryIntervalMedianSeconds)} (IQR ${fmtSeconds(c.retryIntervalP25Seconds)}..${fmtSeconds(c.retryIntervalP75Seconds)}, ${c.retries} retries)` : '-'],
  ], '  '));

  const k = r.checkpoints;
  parts.push('\nCheckpoint throughput\n');
  parts.push(!k || k.targets.length === 0 ? '  no committed checkpoints in the window\n'
    : table(CHECKPOINT_HEAD, checkpointRows(r), '  '));

  const n = r.nfs;
  parts.push('\nNFS WRITE latency\n');
  parts.push(!n || n.samples === 0 ? '  no NFS WRITE telemetry in the window\n' : fields([
    ['queueing in the client', `${pct(n.queueShare)} of execute time (queue ${(n.queueMs / n.writeOps).toFixed(1)} ms, RTT ${(n.rttMs / n.writeOps).toFixed(1)} ms, execute ${(n.executeMs / n.writeOps).toFixed(1)} ms per WRITE)`],
    ['covered', `${Math.round(n.writeOps)} WRITEs on ${n.nodes} nodes since ${day(n.coveredFrom)} (${n.samples} mount intervals)`],
  ], '  '));

  if (r.limits.length > 0) {
    parts.push('\nLimits\n');
    parts.push(r.limits.map((l) => `  ${l}\n`).join(''));
  }
  return parts.join('');
}

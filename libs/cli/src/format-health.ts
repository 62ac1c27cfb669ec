// What `gantry node explain` and `gantry health` print: the detector's score with each signal
// behind it, the node's conditions and decision history; shared faults and findings.
import { nodeStateName, type ExplainNodeResponse, type GetClusterHealthResponse, type HealthSignal, type NodeEvent } from '@gantry/proto';
import { fields, formatAge, nodeStateLabel, table } from './format.js';

const num = (n: number | undefined) => (n === undefined ? '-' : Math.abs(n) >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toPrecision(3));

function signalRow(s: HealthSignal): string[] {
  return [
    s.signal + (s.gpu !== undefined ? ` (GPU ${s.gpu})` : ''),
    num(s.value), num(s.baseline), num(s.peerMedian),
    s.zOwn !== undefined ? s.zOwn.toFixed(1) : '-',
    s.contribution.toFixed(2),
    s.attributedTo ? `shared fault: ${s.attributedTo}` : s.detail,
  ];
}

function historyLine(e: NodeEvent, now: Date): string {
  return `${e.time?.toISOString() ?? '-'} (${formatAge(e.time, now)} ago)  ${nodeStateName(e.fromState)} -> ${nodeStateName(e.toState)}  ${e.reason}`;
}

export function nodeExplanation(res: ExplainNodeResponse, now: Date): string {
  const n = res.node!;
  const h = res.health;
  const rows: [string, string][] = [
    ['Node', n.name],
    ['State', nodeStateLabel(n)],
    ['Reason', n.reason || '-'],
  ];
  if (h) {
    rows.push(
      ['Detector', `${h.status}, score ${h.score.toFixed(2)} (suspect at ${h.suspectAt}, quarantine at ${h.quarantineAt}), evaluated ${formatAge(h.evaluatedAt, now)} ago`],
      ['Hold', h.holdAction ? `${h.holdAction}: ${h.holdReason} (since ${formatAge(h.holdSince, now)})` : '-'],
      ['Repeat offender', h.lemon ? `yes (${h.incidents.length} incidents)` : 'no'],
    );
  } else rows.push(['Detector', 'not evaluated yet']);
  let out = fields(rows);
  if (n.conditions.length > 0) {
    out += '\nConditions:\n' + table(['TYPE', 'STATUS', 'REASON', 'SINCE', 'MESSAGE'], n.conditions.map((c) => [c.type, c.status ? 'True' : 'False', c.reason, formatAge(c.since, now), c.message]), '  ');
  }
  const signals = h?.signals ?? [];
  out += signals.length > 0
    ? '\nSignals:\n' + table(['SIGNAL', 'VALUE', 'OWN BASELINE', 'PEERS', 'Z', 'POINTS', 'NOTE'], signals.map(signalRow), '  ')
    : '\nSignals: none deviating\n';
  if (h && h.incidents.length > 0) out += '\nIncidents:\n' + h.incidents.map((i) => `  ${i.time?.toISOString() ?? '-'}  ${i.kind}  ${i.detail}`).join('\n') + '\n';
  out += res.history.length > 0 ? '\nDecisions (newest first):\n' + res.history.map((e) => `  ${historyLine(e, now)}`).join('\n') + '\n' : '\nDecisions: none\n';
  return out;
}

export function clusterHealthView(res: GetClusterHealthResponse, now: Date): string {
  if (!res.evaluatedAt) return 'The health detector has not evaluated the cluster yet.\n';
  let out = `Evaluated ${formatAge(res.evaluatedAt, now)} ago: ${res.nodesEvaluated} nodes\n`;
  const shared = res.sharedFaults;
  out += shared.length > 0
    ? '\nShared faults (storage targets and fabric segments; their hosts are not quarantined for them):\n' + table(['KIND', 'TARGET', 'ACTIVE', 'SINCE', 'DEGRADED', 'SIGNALS'], shared.map((s) => [
      s.kind, s.target, s.active ? 'yes' : `cleared ${formatAge(s.clearedAt, now)} ago`, formatAge(s.since, now), `${s.degradedNodes.length}/${s.totalNodes}`, s.signals.join(', '),
    ]), '  ')
    : '\nShared faults: none\n';
  out += res.nodes.length > 0
    ? '\nNodes needing attention:\n' + table(['NODE', 'DETECTOR', 'SCORE', 'HOLD', 'LEMON', 'TOP SIGNAL'], res.nodes.map((h) => [
      h.node, h.status, h.score.toFixed(1), h.holdAction || '-', h.lemon ? 'yes' : '-', h.signals[0] ? `${h.signals[0].signal}=${num(h.signals[0].value)}` : '-',
    ]), '  ')
    : '\nNodes needing attention: none\n';
  if (res.findings.length > 0) {
    out += '\nHangs and stragglers:\n' + table(['KIND', 'JOB', 'NODE', 'DETECTED', 'CAUSE', 'EVIDENCE'], res.findings.map((f) => [
      f.kind, f.jobId, f.node || '-', `${formatAge(f.detectedAt, now)} ago`, f.cause || '-', f.evidence.join('; '),
    ]), '  ');
  }
  return out;
}

// What `gantry node explain`, `gantry health` and `gantry admin status` print: the detector's
// score with each signal behind it, the node's conditions and decision history; shared faults
// and findings; the control plane's members.
import { nodeStateName, type ExplainNodeResponse, type GetClusterHealthResponse, type GetClusterStatusResponse, type HealthSignal, type NodeEvent } from '@gantry/proto';
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

const bytes = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** `gantry admin status`: leader, services, NATS and streams, Redis. */
export function clusterStatusView(res: GetClusterStatusResponse, now: Date): string {
  const l = res.leader;
  let out = fields([
    ['Leader', l?.instanceId ? `${l.instanceId}, epoch ${l.epoch}, lease ${(l.leaseRemainingMs / 1000).toFixed(1)} s left` : 'none (no scheduler holds the lease)'],
    ['NATS', res.nats ? `${res.nats.serverName} (nats-server ${res.nats.version})${res.nats.cluster ? `, cluster ${res.nats.cluster}` : ''}${res.nats.connectUrls.length ? `, members ${res.nats.connectUrls.join(' ')}` : ''}` : '-'],
    ['Redis', res.redis ? `${res.redis.role}${res.redis.sentinelMaster ? ` (through Sentinel, master ${res.redis.sentinelMaster})` : ''}, ${res.redis.replicas.length} replica(s)` : '-'],
  ]);
  out += '\nServices:\n' + table(['SERVICE', 'INSTANCE', 'VERSION', 'STARTED', 'LAST SEEN'], res.services.map((s) => [
    s.service, s.instanceId, s.version, `${formatAge(s.startedAt, now)} ago`, s.stale ? `${formatAge(s.lastSeen, now)} ago (stale)` : `${formatAge(s.lastSeen, now)} ago`,
  ]), '  ');
  out += '\nStreams:\n' + table(['STREAM', 'REPLICAS', 'MESSAGES', 'SIZE', 'PEERS'], res.streams.map((s) => [
    s.name, String(s.replicas), String(s.messages), bytes(s.bytes),
    s.peers.map((p) => `${p.name}${p.leader ? '*' : p.current ? '' : ` (behind ${p.lag})`}`).join(' ') || '-',
  ]), '  ');
  if (res.redis && res.redis.replicas.length > 0) {
    out += '\nRedis replicas:\n' + table(['ADDRESS', 'STATE', 'LAG', 'BEHIND'], res.redis.replicas.map((r) => [r.address, r.state, `${r.lagSeconds} s`, bytes(r.offsetLagBytes)]), '  ');
  }
  return out;
}

// The detector's results as the API serves them (gantry.v1 NodeHealth, SharedFault,
// ProgressFinding): what `gantry node explain` and `gantry health` print.
import { GetClusterHealthResponse, HealthSignal, NodeHealth, NodeIncident, ProgressFinding, SharedFault } from '@gantry/proto';
import type { HealthConfig, HealthEvaluation, HealthReason, NodeDecision } from '../health/index.js';
import type { HealthState } from '../health/index.js';

/** Findings kept for `gantry health` beyond the window that found them. */
const FINDINGS_KEPT = 50;

function signal(r: HealthReason): HealthSignal {
  return HealthSignal.create({
    signal: r.signal, value: r.value, baseline: r.baseline, peerMedian: r.peerMedian, zOwn: r.zOwn, zPeer: r.zPeer,
    weight: r.weight, contribution: r.contribution, gpu: r.gpu, detail: r.detail ?? '', attributedTo: r.attributedTo ?? '',
  });
}

export function nodeHealth(d: NodeDecision, state: HealthState, config: HealthConfig, at: Date): NodeHealth {
  const rec = state.nodes[d.node];
  return NodeHealth.create({
    node: d.node, status: d.status, score: d.score, signals: d.reasons.map(signal),
    holdAction: d.hold?.action ?? '', holdReason: d.hold?.reason ?? '', holdSince: d.hold ? new Date(d.hold.sinceMs) : undefined,
    lemon: d.lemon,
    incidents: (rec?.incidents ?? []).map((i) => NodeIncident.create({ time: new Date(i.atMs), kind: i.kind, detail: i.detail })),
    evaluatedAt: at, suspectAt: config.states.suspect.enter, quarantineAt: config.states.quarantine.enter,
  });
}

/** Worth listing in `gantry health`: anything but a plainly healthy node. */
const notable = (h: NodeHealth) => h.status !== 'READY' || h.score > 0 || h.holdAction !== '' || h.lemon;

export function clusterHealth(ev: HealthEvaluation, nodes: NodeHealth[], previous: GetClusterHealthResponse | undefined, at: Date): GetClusterHealthResponse {
  const findings = ev.findings.map((f) => ProgressFinding.create({
    kind: f.kind, jobId: f.job, node: f.node ?? '', since: new Date(f.sinceMs), detectedAt: new Date(f.detectedAtMs),
    evidence: f.evidence, cause: f.cause ? `${f.cause.kind}:${f.cause.target}` : '',
  }));
  return GetClusterHealthResponse.create({
    evaluatedAt: at,
    sharedFaults: ev.sharedFaults.map((s) => SharedFault.create({
      kind: s.kind, target: s.target, active: s.active, since: new Date(s.sinceMs), clearedAt: s.clearedMs !== undefined ? new Date(s.clearedMs) : undefined,
      degradedNodes: s.degradedNodes, totalNodes: s.totalNodes, signals: s.signals,
    })),
    nodes: nodes.filter(notable).sort((a, b) => b.score - a.score),
    findings: [...findings, ...(previous?.findings ?? [])].slice(0, FINDINGS_KEPT),
    nodesEvaluated: nodes.length,
  });
}

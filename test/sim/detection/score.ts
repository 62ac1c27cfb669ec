// Scoring detectors against the labels. Pure: labels + a detector's alarm intervals, shared
// flags and findings in, figures out.
import type { DetectorResult, Interval } from './detectors.js';
import type { Label } from './labels.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** After an XID (or the end of an episode) a detector still gets this long to raise its alarm. */
export const DETECT_GRACE_MS = 30 * MIN;
/** Alarms this long after a fault's node is back in service are no longer that fault's. */
const EXPLAIN_TAIL_MS = HOUR;

export interface Figures {
  detector: string;
  hardware: { total: number; detected: number; missed: string[] };
  precursor: { total: number; early: number; leadMinutes: number[] };
  falseAlarms: { count: number; perNodeDay: number; perDayAt63: number; examples: string[] };
  shared: { total: number; flagged: number; correct: number; hostsQuarantined: number; hostsAlarmed: number; falseFlags: number; details: string[] };
  lookalikes: { total: number; correct: number; details: string[] };
  stragglers: { total: number; found: number };
  hangs: { total: number; found: number; named: number; sharedCause: number };
  falseFindings: number;
  lemons: { expected: string[]; flagged: string[] };
  benign: { total: number; alarmed: number };
}

const overlaps = (iv: Interval, from: number, to: number): boolean => iv.fromMs <= to && (iv.toMs ?? Number.POSITIVE_INFINITY) >= from;

/**
 * The alarms that count as detecting a fault: raised on its node after the precursor began
 * and no later than the grace after the XID (or the end of an episode without one). For a
 * fault with an XID the alarm must still be up at the XID: an alarm that came and went days
 * earlier (a heartbeat blip) did not foresee it. Lead time is from that alarm's start.
 */
function detections(alarms: readonly Interval[], l: Label): Interval[] {
  const anchor = l.xidMs ?? l.endMs;
  return alarms.filter((a) => a.fromMs >= l.startMs - 5 * MIN && a.fromMs <= anchor + DETECT_GRACE_MS
    && (l.xidMs === undefined || (a.toMs ?? Number.POSITIVE_INFINITY) >= l.xidMs));
}

/** Windows in which an alarm on a node is explained by a label of that node. */
function explainers(labels: readonly Label[]): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const l of labels) {
    if (l.category === 'benign') continue;
    const node = l.node ?? l.expectedNode;
    if (!node || (l.category === 'hang' && !l.expectedNode)) continue;
    const who = l.category === 'hang' || l.category === 'straggler' ? l.expectedNode! : node;
    const list = out.get(who) ?? [];
    list.push([l.startMs - 5 * MIN, Math.max(l.outUntilMs ?? 0, l.endMs + DETECT_GRACE_MS) + EXPLAIN_TAIL_MS]);
    out.set(who, list);
  }
  return out;
}

export function score(r: DetectorResult, labels: readonly Label[], nodes: number, days: number): Figures {
  const byNode = new Map<string, Interval[]>();
  for (const a of r.alarms) byNode.set(a.node, [...(byNode.get(a.node) ?? []), a]);
  const alarmsIn = (node: string, from: number, to: number): Interval[] => (byNode.get(node) ?? []).filter((a) => overlaps(a, from, to));

  const hw = labels.filter((l) => l.category === 'hardware');
  const missed: string[] = [];
  let early = 0;
  const lead: number[] = [];
  let precursorTotal = 0;
  for (const l of hw) {
    const hits = detections(byNode.get(l.node!) ?? [], l);
    if (hits.length === 0) missed.push(l.id);
    if (!l.precursor || l.xidMs === undefined) continue;
    precursorTotal++;
    const first = Math.min(...hits.map((h) => h.fromMs));
    if (hits.length > 0 && first < l.xidMs) {
      early++;
      lead.push((l.xidMs - first) / MIN);
    }
  }

  const explain = explainers(labels);
  const fa: Interval[] = r.alarms.filter((a) => !(explain.get(a.node) ?? []).some(([f, t]) => a.fromMs >= f && a.fromMs <= t));

  const sharedLabels = labels.filter((l) => l.category.startsWith('shared-'));
  const kindOf: Record<string, string> = { 'shared-storage': 'storage', 'shared-fabric': 'fabric', 'shared-management': 'management' };
  let flagged = 0, correct = 0, hostsQ = 0, hostsA = 0;
  const sharedDetails: string[] = [];
  for (const l of sharedLabels) {
    const [from, to] = [l.startMs, l.endMs + DETECT_GRACE_MS];
    const isFlagged = r.shared.some((s) => s.kind === kindOf[l.category] && s.target === l.target && s.fromMs <= to && (s.toMs ?? Infinity) >= from);
    const hosts = (l.nodes ?? []).flatMap((n) => alarmsIn(n, from, l.endMs + HOUR).filter((a) => a.fromMs >= from - 5 * MIN));
    const q = hosts.filter((h) => h.quarantined).length;
    if (isFlagged) flagged++;
    hostsQ += q;
    hostsA += hosts.length;
    if (isFlagged && hosts.length === 0) correct++;
    sharedDetails.push(`${l.id} ${l.category} ${l.target}: ${isFlagged ? 'flagged' : 'not flagged'}, ${hosts.length} hosts alarmed, ${q} quarantined`);
  }
  const sharedWindows = sharedLabels.map((l) => ({ kind: kindOf[l.category], target: l.target, from: l.startMs - 5 * MIN, to: l.endMs + HOUR }));
  const falseFlags = r.shared.filter((s) => !sharedWindows.some((w) => w.kind === s.kind && w.target === s.target && s.fromMs >= w.from && s.fromMs <= w.to)).length;

  // Node faults that look shared (a host's own NFS client, a host's RoCE link): the right call
  // is the node, with no shared flag on its storage target or segment.
  const look = labels.filter((l) => l.category === 'node-network' || l.kind === 'roce-flap');
  let lookCorrect = 0;
  const lookDetails: string[] = [];
  for (const l of look) {
    const [from, to] = [l.startMs, l.endMs + DETECT_GRACE_MS];
    const alarmed = alarmsIn(l.node!, from, to).length > 0;
    const flaggedShared = r.shared.some((s) => s.fromMs <= to && (s.toMs ?? Infinity) >= from && s.kind !== 'management');
    if (alarmed && !flaggedShared) lookCorrect++;
    lookDetails.push(`${l.id} ${l.kind} ${l.node}: ${alarmed ? 'node alarmed' : 'node not alarmed'}${flaggedShared ? ', shared flag raised' : ''}`);
  }

  const strag = labels.filter((l) => l.category === 'straggler');
  const stragFound = strag.filter((l) => r.findings.some((f) => f.kind === 'straggler' && f.job === l.job && f.node === l.expectedNode && f.detectedAtMs >= l.startMs && f.detectedAtMs <= l.endMs + DETECT_GRACE_MS)).length;
  const hangs = labels.filter((l) => l.category === 'hang');
  let hangFound = 0, hangNamed = 0;
  for (const l of hangs) {
    const f = r.findings.find((x) => x.kind === 'hang' && x.job === l.job && x.detectedAtMs >= l.startMs && x.detectedAtMs <= l.endMs + DETECT_GRACE_MS);
    if (!f) continue;
    hangFound++;
    if (f.node === l.expectedNode) hangNamed++;
  }
  const storageStalls = labels.filter((l) => l.category === 'shared-storage');
  const sharedCause = r.findings.filter((f) => f.kind === 'hang' && f.cause && !f.node && storageStalls.some((l) => f.detectedAtMs >= l.startMs && f.detectedAtMs <= l.endMs + DETECT_GRACE_MS)).length;
  const falseFindings = r.findings.filter((f) => {
    const ok = [...strag, ...hangs].some((l) => f.job === l.job && f.detectedAtMs >= l.startMs && f.detectedAtMs <= l.endMs + DETECT_GRACE_MS)
      || storageStalls.some((l) => f.kind === 'hang' && f.cause !== undefined && f.detectedAtMs >= l.startMs && f.detectedAtMs <= l.endMs + DETECT_GRACE_MS)
      || labels.some((l) => l.category === 'node-network' && f.node === l.node && f.detectedAtMs >= l.startMs && f.detectedAtMs <= l.endMs + DETECT_GRACE_MS);
    return !ok;
  }).length;

  // Expected lemons: nodes with 3+ incidents (hardware, node-network, named stragglers/hangs) within 14 days.
  const incidents = new Map<string, number[]>();
  for (const l of labels) {
    const n = l.category === 'hardware' || l.category === 'node-network' ? l.node : l.category === 'straggler' || l.category === 'hang' ? l.expectedNode : undefined;
    if (n) incidents.set(n, [...(incidents.get(n) ?? []), l.xidMs ?? l.startMs]);
  }
  const expectedLemons = [...incidents].filter(([, ts]) => ts.some((t) => ts.filter((u) => u >= t && u - t <= 14 * 24 * HOUR).length >= 3)).map(([n]) => n).sort();

  const benign = labels.filter((l) => l.category === 'benign');
  const benignAlarmed = benign.filter((l) => alarmsIn(l.node!, l.startMs, l.endMs + DETECT_GRACE_MS).some((a) => a.fromMs >= l.startMs - 5 * MIN)).length;

  return {
    detector: r.name,
    hardware: { total: hw.length, detected: hw.length - missed.length, missed },
    precursor: { total: precursorTotal, early, leadMinutes: lead.sort((a, b) => a - b) },
    falseAlarms: {
      count: fa.length, perNodeDay: fa.length / (nodes * days), perDayAt63: (fa.length / days) * (63 / nodes),
      examples: fa.slice(0, 8).map((a) => `${a.node} ${new Date(a.fromMs).toISOString().slice(5, 16)} ${a.reason}`),
    },
    shared: { total: sharedLabels.length, flagged, correct, hostsQuarantined: hostsQ, hostsAlarmed: hostsA, falseFlags, details: sharedDetails },
    lookalikes: { total: look.length, correct: lookCorrect, details: lookDetails },
    stragglers: { total: strag.length, found: stragFound },
    hangs: { total: hangs.length, found: hangFound, named: hangNamed, sharedCause },
    falseFindings,
    lemons: { expected: expectedLemons, flagged: r.lemons.map((l) => l.node).sort() },
    benign: { total: benign.length, alarmed: benignAlarmed },
  };
}

// The operations report (services/scheduler/src/report) on the detection evaluation's
// simulated weeks: runs a scenario (the same generator and the same detector as
// `pnpm eval:detection`), records what the scheduler would have logged during it
// (event-log.ts: XIDs and the health monitor's state changes), and writes those node event
// logs with the run's ground truth to a JSON file. The report's unit test feeds the recorded
// logs to the report's pure core and checks its figures against that truth; re-record with
//
//   node --import tsx test/sim/detection/report-sim.ts [--days N] [--out FILE]
//
// (about 2 min CPU for the four weeks; default FILE: services/scheduler/test/report/detection-weeks.json).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeHostEvent, NodeState, XidEvent } from '@gantry/proto';
import { HealthEvaluator, resolveHealthConfig } from '../../../services/scheduler/src/health/index.js';
import { ClusterSim } from './cluster.js';
import { SimEventLog, reportTruth } from './event-log.js';
import type { Label } from './labels.js';
import { parseScenario, type Scenario } from './scenario.js';

export interface RecordedWeeks {
  scenario: string;
  seed: number;
  days: number;
  windowSec: number;
  fromMs: number;
  toMs: number;
  /** node -> its event log (NodeHostEvent as proto JSON), oldest first. */
  events: Record<string, unknown[]>;
  truth: {
    /** Injected XIDs that reached the scheduler, by number (see event-log.ts). */
    xids: Record<string, number>;
    unlabelledXids: number[];
    /** Labelled node faults per node. */
    nodeFaults: Record<string, number>;
    /** Injected faults (any kind with a node) during which the detector quarantined their node, per node: the truth for exclusions. */
    quarantinedFaults: Record<string, number>;
  };
  /** The run's labels: what was injected, where and when. */
  labels: Label[];
}

/** XID fields the report reads; the rest (raw kernel line, catalogue texts) would only bloat the record. */
const slimXid = (x: XidEvent): XidEvent => XidEvent.create({ eventId: x.eventId, node: x.node, time: x.time, gpuIndex: x.gpuIndex, xid: x.xid, mnemonic: x.mnemonic, causeClass: x.causeClass, severity: x.severity, fatal: x.fatal });

export function recordWeeks(sc: Scenario): RecordedWeeks {
  const sim = new ClusterSim(sc, { fidelityEveryHours: 24 * 365 });
  const config = resolveHealthConfig({ windowSec: sc.intervalSec });
  const evaluator = new HealthEvaluator(config);
  const log = new SimEventLog(config);
  const quarantinedBy = new Map<string, number>();
  while (!sim.done) {
    const w = sim.step();
    const out = evaluator.evaluate({ nowMs: w.nowMs, batches: w.batches, xids: w.xids, heartbeats: w.heartbeats, nodes: w.nodes, jobs: w.jobs, operator: w.operator });
    log.record(w, out);
  }
  const endMs = sim.startMs + sc.days * 86_400_000;
  const labels = sim.labels.filter((l) => l.startMs < endMs && (l.xidMs ?? l.endMs) <= endMs);
  const truth = reportTruth(sc, labels);
  // An injected fault on a node is an exclusion when its node was quarantined from the fault's onset to 30 min after its XID or end.
  for (const l of labels) {
    if (!l.node) continue;
    const until = (l.xidMs ?? l.endMs) + 30 * 60_000;
    const q = (log.events.get(l.node) ?? []).some((e) => e.event?.$case === 'transition' && e.event.transition.toState === NodeState.NODE_STATE_QUARANTINED && (e.time?.getTime() ?? 0) >= l.startMs && (e.time?.getTime() ?? 0) <= until);
    if (q) quarantinedBy.set(l.node, (quarantinedBy.get(l.node) ?? 0) + 1);
  }
  const events: Record<string, unknown[]> = {};
  for (const name of sim.names) {
    events[name] = (log.events.get(name) ?? []).map((e) => NodeHostEvent.toJSON(e.event?.$case === 'xid' ? { time: e.time, event: { $case: 'xid', xid: slimXid(e.event.xid) } } : e));
  }
  return {
    scenario: sc.name, seed: sc.seed, days: sc.days, windowSec: sc.intervalSec, fromMs: sim.startMs, toMs: endMs, events,
    truth: {
      xids: Object.fromEntries([...truth.xids].sort((a, b) => a[0] - b[0])),
      unlabelledXids: [...truth.unlabelledXids],
      nodeFaults: Object.fromEntries([...truth.nodeFaults].sort()),
      quarantinedFaults: Object.fromEntries([...quarantinedBy].sort()),
    },
    labels,
  };
}

const here = dirname(fileURLToPath(import.meta.url));
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const sc = parseScenario(JSON.parse(readFileSync(join(here, 'scenarios', 'four-weeks-63x8.json'), 'utf8')));
  if (opt('days')) sc.days = Number(opt('days'));
  const out = opt('out') ?? join(here, '../../../services/scheduler/test/report/detection-weeks.json');
  const rec = recordWeeks(sc);
  writeFileSync(out, JSON.stringify(rec) + '\n');
  console.log(`${out}: ${Object.values(rec.events).reduce((s, e) => s + e.length, 0)} events of ${sc.cluster.nodes} nodes over ${sc.days} days; truth ${JSON.stringify(rec.truth)}`);
}

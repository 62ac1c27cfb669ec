// The operations report on the detection evaluation's four simulated weeks (63 nodes x 8 GPUs,
// the scenario and detector of `pnpm eval:detection`): the report's pure core is fed the node
// event logs the scheduler would have written during the run (XIDs as the agents delivered
// them, the health monitor's state changes), recorded with the run's ground truth by
// `node --import tsx test/sim/detection/report-sim.ts`. It must recover what was injected.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FailureClass, NodeHostEvent } from '@gantry/proto';
import type { RecordedWeeks } from '../../../../test/sim/detection/report-sim.js';
import { resolveHealthConfig } from '../../src/health/index.js';
import { xidFailureClass } from '../../src/recovery/xid-policy.js';
import { operationsReport } from '../../src/report/analyze.js';
import { NfsQueueTally } from '../../src/report/nfs.js';

const rec = JSON.parse(readFileSync(new URL('./detection-weeks.json', import.meta.url), 'utf8')) as RecordedWeeks;
const config = resolveHealthConfig({ windowSec: rec.windowSec });
const report = operationsReport({
  fromMs: rec.fromMs, toMs: rec.toMs,
  nodes: Object.entries(rec.events).map(([name, events]) => ({ name, events: events.map((e) => NodeHostEvent.fromJSON(e)) })),
  jobs: [], checkpoints: [], targets: [], nfs: new NfsQueueTally(rec.fromMs, rec.toMs),
  xidClass: (x) => xidFailureClass(x, config).failureClass,
});

describe('operations report on the detection evaluation\'s simulated weeks', () => {
  it('is the recorded scenario: four weeks, 63 nodes', () => {
    expect(rec).toMatchObject({ scenario: 'four-weeks-63x8', days: 28 });
    expect(report.nodes).toBe(63);
  });

  it('counts every injected XID that reached the scheduler, by number', () => {
    const got = new Map(report.xidFailures.map((x) => [x.xid, x.events]));
    for (const [xid, n] of Object.entries(rec.truth.xids)) expect([Number(xid), got.get(Number(xid))]).toEqual([Number(xid), n]);
    // Every other XID in the report is one the generator emits as unlabelled noise.
    const labelled = new Set(Object.keys(rec.truth.xids).map(Number));
    expect(report.xidFailures.map((x) => x.xid).filter((x) => !labelled.has(x)).every((x) => rec.truth.unlabelledXids.includes(x))).toBe(true);
    // The GPU that vanished without its XID reaching the scheduler is not an XID event.
    const vanished = rec.labels.find((l) => l.id === 'f16-vanish-no-xid')!;
    expect(report.xidFailures.find((x) => x.xid === 79)!.events).toBe(rec.labels.filter((l) => l.xid === 79 && l.id !== vanished.id).length);
  });

  it('counts the node-fault XIDs (the XID policy) as detection\'s faults', () => {
    const nodeFault = Object.entries(rec.truth.xids)
      .filter(([xid]) => xidFailureClass({ xid: Number(xid) }, config).failureClass === FailureClass.FAILURE_CLASS_NODE_FAULT)
      .reduce((s, [, n]) => s + n, 0);
    expect(report.detection!.faultXids).toBe(nodeFault);
    expect(nodeFault).toBeGreaterThanOrEqual(10);
  });

  it('exclusions: one per injected fault that took its node out of service; the repeat offender first; the top-3 share', () => {
    const truth = Object.entries(rec.truth.quarantinedFaults);
    const total = truth.reduce((s, [, n]) => s + n, 0);
    const top3 = truth.map(([, n]) => n).sort((a, b) => b - a).slice(0, 3).reduce((s, n) => s + n, 0);
    expect(report.exclusions).toMatchObject({ quarantines: total, blames: 0, total, nodes: truth.length });
    expect(report.exclusions!.topNodes[0]).toEqual({ node: 'node-41', count: rec.truth.quarantinedFaults['node-41'] });
    expect(report.exclusions!.top3Share).toBeCloseTo(top3 / total);
    // node-41 is the scenario's repeat offender: three node faults in eight days.
    expect(rec.truth.nodeFaults['node-41']).toBe(3);
  });
});

// The operations report's analyses on hand-made records whose answers are known.
import { describe, expect, it } from 'vitest';
import {
  Attempt, Checkpoint, CheckpointState, FailureClass, Job, JobState, NodeHostEvent, NodeState, RecoveryGrade, StorageTarget, TelemetryBatch, XidEvent,
} from '@gantry/proto';
import { DEFAULT_HEALTH_CONFIG } from '../../src/health/index.js';
import { xidFailureClass } from '../../src/recovery/xid-policy.js';
import { operationsReport, quantile, type ReportInput } from '../../src/report/analyze.js';
import { NfsQueueTally } from '../../src/report/nfs.js';

const T0 = Date.UTC(2026, 10, 1);
const H = 3_600_000;
const at = (h: number) => new Date(T0 + h * H);
const S = NodeState;

const xid = (node: string, h: number, n: number, causeClass = 'hardware'): NodeHostEvent =>
  NodeHostEvent.create({ time: at(h), event: { $case: 'xid', xid: XidEvent.create({ node, time: at(h), xid: n, mnemonic: `X${n}`, causeClass }) } });
const move = (node: string, h: number, from: NodeState, to: NodeState, reason: string): NodeHostEvent =>
  NodeHostEvent.create({ time: at(h), event: { $case: 'transition', transition: { eventId: '', nodeName: node, fromState: from, toState: to, reason, time: at(h) } } });

function input(extra: Partial<ReportInput>): ReportInput {
  return {
    fromMs: T0, toMs: T0 + 10 * 24 * H, nodes: [], jobs: [], checkpoints: [], targets: [], nfs: new NfsQueueTally(T0, T0 + 10 * 24 * H),
    xidClass: (x) => xidFailureClass(x, DEFAULT_HEALTH_CONFIG).failureClass, ...extra,
  };
}

describe('operations report', () => {
  it('counts XIDs by number and component, within the window only', () => {
    const r = operationsReport(input({
      nodes: [
        { name: 'n1', events: [xid('n1', 1, 79), xid('n1', 2, 79), xid('n1', 3, 31, 'application'), xid('n1', -5, 79)] },
        { name: 'n2', events: [xid('n2', 4, 79), xid('n2', 5, 74, 'nvlink')] },
      ],
    }));
    expect(r.xidFailures.map((x) => [x.xid, x.events, x.nodes, x.component])).toEqual([[79, 3, 2, 'hardware'], [31, 1, 1, 'application'], [74, 1, 1, 'nvlink']]);
    expect(r.xidFailures[0]!.failureClass).toBe(FailureClass.FAILURE_CLASS_NODE_FAULT);
    expect(r.components).toEqual([{ component: 'hardware', events: 3, share: 0.6 }, { component: 'application', events: 1, share: 0.2 }, { component: 'nvlink', events: 1, share: 0.2 }]);
  });

  it('top-3 share of quarantines and blames', () => {
    const q = (node: string, h: number) => move(node, h, S.NODE_STATE_READY, S.NODE_STATE_QUARANTINED, 'ScoreAboveQuarantine: score 9');
    const blamedJob = Job.create({
      id: 'j1', state: JobState.JOB_STATE_SUCCEEDED, excludedNodes: ['n5'], recoveries: 1,
      attempts: [{ number: 1, failure: { node: 'n5', failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, time: at(6), reason: 'XID 79' }, finishedAt: at(6) }, { number: 2, grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES, startedAt: at(6.1) }],
    });
    const r = operationsReport(input({
      nodes: [
        { name: 'n1', events: [q('n1', 1), move('n1', 2, S.NODE_STATE_QUARANTINED, S.NODE_STATE_READY, 'operator release'), q('n1', 3)] },
        { name: 'n2', events: [q('n2', 1)] },
        { name: 'n3', events: [q('n3', 1)] },
        { name: 'n4', events: [q('n4', 1)] },
        { name: 'n5', events: [q('n5', 1)] },
      ],
      jobs: [blamedJob],
    }));
    expect(r.exclusions).toMatchObject({ quarantines: 6, blames: 1, total: 7, nodes: 5 });
    expect(r.exclusions!.topNodes).toEqual([{ node: 'n1', count: 2 }, { node: 'n5', count: 2 }, { node: 'n2', count: 1 }]);
    expect(r.exclusions!.top3Share).toBeCloseTo(5 / 7);
  });

  it('lead time from the first suspicion to the XID, false alarms per day', () => {
    const sus = (node: string, h: number) => move(node, h, S.NODE_STATE_READY, S.NODE_STATE_SUSPECT, 'ScoreAboveSuspect: score 5');
    const r = operationsReport(input({
      nodes: [
        // Suspected 3 h before its XID 79, quarantined at it: lead 3 h.
        { name: 'n1', events: [sus('n1', 10), move('n1', 12, S.NODE_STATE_SUSPECT, S.NODE_STATE_QUARANTINED, 'ScoreAboveQuarantine: x'), xid('n1', 13, 79)] },
        // An XID with no suspicion before it: not early.
        { name: 'n2', events: [xid('n2', 20, 48), move('n2', 20, S.NODE_STATE_READY, S.NODE_STATE_QUARANTINED, 'Held: XID 48')] },
        // Two suspicions nothing explains: false alarms. The XID 31 is the application's.
        { name: 'n3', events: [sus('n3', 30), move('n3', 31, S.NODE_STATE_SUSPECT, S.NODE_STATE_READY, 'healthy again: score 0'), sus('n3', 50), xid('n3', 50.5, 31, 'application')] },
        // A suspicion explained by a node-fault XID within the hour after the node was READY again.
        { name: 'n4', events: [sus('n4', 60), move('n4', 61, S.NODE_STATE_SUSPECT, S.NODE_STATE_READY, 'healthy again'), xid('n4', 61.5, 79)] },
      ],
    }));
    expect(r.detection).toMatchObject({ faultXids: 3, suspectedBeforeXid: 1, leadSeconds: [3 * 3600], medianLeadSeconds: 3 * 3600, suspicions: 4, falseAlarms: 2 });
    expect(r.detection!.falseAlarmsPerDay).toBeCloseTo(0.2);
  });

  it('retry chains: success of the ended ones, time from failure to the next start', () => {
    const attempt = (n: number, failH: number | undefined, startH: number) => ({
      number: n, grade: n > 1 ? RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES : RecoveryGrade.RECOVERY_GRADE_UNSPECIFIED, startedAt: at(startH),
      ...(failH !== undefined && { failure: { failureClass: FailureClass.FAILURE_CLASS_GPU_CONTAINED, time: at(failH), node: 'n1', reason: 'XID 94' }, finishedAt: at(failH) }),
    });
    const r = operationsReport(input({
      jobs: [
        Job.create({ id: 'a', state: JobState.JOB_STATE_SUCCEEDED, recoveries: 2, attempts: [attempt(1, 1, 0), attempt(2, 2, 1 + 10 / 60), attempt(3, undefined, 2 + 12 / 60)] }),
        Job.create({ id: 'b', state: JobState.JOB_STATE_FAILED, recoveries: 1, attempts: [attempt(1, 1, 0), attempt(2, 3, 1 + 11 / 60)] }),
        Job.create({ id: 'c', state: JobState.JOB_STATE_RUNNING, recoveries: 1, attempts: [attempt(1, 1, 0), attempt(2, undefined, 1 + 11 / 60)] }),
        // Never retried: not a chain.
        Job.create({ id: 'd', state: JobState.JOB_STATE_FAILED, attempts: [attempt(1, 1, 0)] }),
      ],
    }));
    expect(r.retryChains).toMatchObject({ chains: 3, attempts: 7, succeeded: 1, failed: 1, open: 1, successShare: 0.5, retries: 4 });
    expect(r.retryChains!.retryIntervalMedianSeconds).toBeCloseTo(11 * 60);
    expect(r.retryChains!.retryIntervalP25Seconds).toBeCloseTo(10.75 * 60);
    expect(r.attemptFailures).toEqual([{ failureClass: FailureClass.FAILURE_CLASS_GPU_CONTAINED, attempts: 6 }]);

    // A long chain whose record dropped its 3 oldest attempts still counts all 5.
    const compacted = operationsReport(input({
      jobs: [Job.create({ id: 'e', state: JobState.JOB_STATE_SUCCEEDED, recoveries: 4, attempt: 5, attemptsCompacted: 3, attempts: [attempt(4, 1, 0), attempt(5, undefined, 1 + 10 / 60)] })],
    }));
    expect(compacted.retryChains).toMatchObject({ chains: 1, attempts: 5, succeeded: 1, retries: 1 });

    // With its archive: every interval and failure, each attempt once though the archive, read
    // after the record, also holds attempt 4 (a commit compacted it in between).
    const archived = operationsReport(input({
      jobs: [Job.create({ id: 'e', state: JobState.JOB_STATE_SUCCEEDED, recoveries: 4, attempt: 5, attemptsCompacted: 3, attempts: [attempt(4, 4, 3 + 12 / 60), attempt(5, undefined, 4 + 10 / 60)] })],
      archivedAttempts: new Map([['e', [attempt(1, 1, 0), attempt(2, 2, 1 + 10 / 60), attempt(3, 3, 2 + 11 / 60), attempt(4, 4, 3 + 12 / 60)].map((a) => Attempt.fromPartial(a))]]),
    }));
    expect(archived.retryChains).toMatchObject({ chains: 1, attempts: 5, succeeded: 1, retries: 4 });
    expect(archived.retryChains!.retryIntervalMedianSeconds).toBeCloseTo(10.5 * 60);
    expect(archived.attemptFailures).toEqual([{ failureClass: FailureClass.FAILURE_CLASS_GPU_CONTAINED, attempts: 4 }]);
  });

  it('checkpoint throughput against the target and the writers\' links', () => {
    const GB = 1e9;
    const ck = (id: string, bytes: number, secs: number, path = '/mnt/ckpt/j1/step') => Checkpoint.create({
      id, jobId: 'j1', attempt: 1, path, bytes, state: CheckpointState.CHECKPOINT_STATE_COMMITTED, createdAt: at(1), committedAt: new Date(at(1).getTime() + secs * 1000),
    });
    const r = operationsReport(input({
      nodes: [{ name: 'n1', events: [], linkBytesPerSecond: 25 * GB }, { name: 'n2', events: [], linkBytesPerSecond: 25 * GB }],
      jobs: [Job.create({ id: 'j1', attempts: [{ number: 1, placement: [{ rank: 0, node: 'n1', gpuIndices: [0] }, { rank: 1, node: 'n2', gpuIndices: [0] }] }] })],
      targets: [StorageTarget.create({ name: 'ckpt', mountPrefix: '/mnt/ckpt', writeBytesPerSecond: 250 * GB })],
      checkpoints: [ck('c1', 400 * GB, 10), ck('c2', 200 * GB, 10), ck('c3', 100 * GB, 10, '/elsewhere/x'), Checkpoint.create({ id: 'c4', state: CheckpointState.CHECKPOINT_STATE_CORRUPT })],
    }));
    expect(r.checkpoints).toMatchObject({ checkpoints: 3, bytes: 700 * GB });
    const [none, ckpt] = r.checkpoints!.targets;
    expect(none).toMatchObject({ target: '', checkpoints: 1, capacityBytesPerSecond: 0 });
    expect(ckpt).toMatchObject({ target: 'ckpt', checkpoints: 2, peakBytesPerSecond: 40 * GB, medianBytesPerSecond: 30 * GB, capacityBytesPerSecond: 250 * GB, linkBytesPerSecond: 50 * GB });
    expect(ckpt!.peakShareOfCapacity).toBeCloseTo(0.16);
    expect(ckpt!.peakShareOfLink).toBeCloseTo(0.8);
  });

  it('NFS WRITE queueing: queue time over execute time, weighted by ops', () => {
    const nfs = new NfsQueueTally(T0, T0 + H);
    const batch = (h: number, node: string, opsPerSecond: number, q: number, rtt: number) => TelemetryBatch.create({
      node, time: at(h), interval: { seconds: 10, nanos: 0 },
      nfsMounts: [{ device: 'srv:/ckpt', rates: { ops: [{ op: 'WRITE', opsPerSecond, avgQueueMs: q, avgRttMs: rtt, avgExecuteMs: q + rtt + 1 }, { op: 'READ', opsPerSecond: 100, avgQueueMs: 0, avgRttMs: 1, avgExecuteMs: 1 }] } }],
    });
    nfs.add(batch(0.1, 'n1', 10, 90, 9)); // 100 ops, 9000 queue ms, 10000 execute ms
    nfs.add(batch(0.2, 'n2', 30, 0, 2)); // 300 ops, 0 queue, 900 execute ms
    nfs.add(batch(2, 'n2', 30, 1000, 2)); // after the window: not counted
    nfs.add(TelemetryBatch.create({ node: 'n3', time: at(0.3) })); // an agent's first batch: no interval, no rates
    const f = nfs.figures();
    expect(f).toMatchObject({ nodes: 2, samples: 2, writeOps: 400, queueMs: 9000, executeMs: 10_900 });
    expect(f.queueShare).toBeCloseTo(9000 / 10_900);
    expect(f.coveredFrom).toEqual(at(0.1));
  });

  it('quantile interpolates between ranks', () => {
    expect(quantile([], 0.5)).toBe(0);
    expect(quantile([3, 1, 2], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.25)).toBeCloseTo(1.75);
  });
});

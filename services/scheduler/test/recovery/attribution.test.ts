import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Attempt, FailureClass, FaultSignal, RankPhase, RankPlacement, RankStatus } from '@gantry/proto';
import { attributeFailure } from '../../src/recovery/attribution.js';
import { xidFailureClass } from '../../src/recovery/xid-policy.js';
import { DEFAULT_HEALTH_CONFIG, resolveHealthConfig } from '../../src/health/index.js';

const t = (s: number) => new Date(Date.UTC(2026, 11, 1, 12, 0, s));
const placement = [
  RankPlacement.create({ rank: 0, node: 'sim-node-0', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7] }),
  RankPlacement.create({ rank: 1, node: 'sim-node-1', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7] }),
];

function exited(rank: number, exitCode: number | undefined, at: Date, extra: Partial<RankStatus> = {}): RankStatus {
  return RankStatus.create({ rank, phase: RankPhase.RANK_PHASE_EXITED, exitCode, finishedAt: at, ...extra });
}

function attempt(ranks: RankStatus[]): Attempt {
  return Attempt.create({ number: 1, placement, ranks });
}

describe('failure attribution', () => {
  it('blames the rank that raised, not the healthy node whose torchrun exited first after losing its peer', () => {
    // What a real 2-node torchrun job showed: node-0's workers died of "Connection closed by
    // peer" and its torchrun exited first; the culprit was node-1's worker.
    const a = attempt([
      exited(0, 1, t(1), { error: 'RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:29500', errorTime: t(1) }),
      exited(1, 1, t(2), { error: 'ValueError: bad batch at step 7', errorTime: t(1) }),
    ]);
    const out = attributeFailure(a, [], t(1));
    expect(out.failureClass).toBe(FailureClass.FAILURE_CLASS_APPLICATION);
    expect(out).toMatchObject({ rank: 1, node: 'sim-node-1', exitCode: 1, faultyNodes: [] });
    expect(out.reason).toBe('node-rank 1 on sim-node-1 exited with code 1: ValueError: bad batch at step 7 (first of 2 failed ranks)');
    expect(out.evidence).toContain('(secondary)');
  });

  it('never takes a launcher wrapper error or a stop Gantry sent as the cause', () => {
    const a = attempt([
      exited(0, 1, t(1), { error: 'torch.distributed.elastic.multiprocessing.errors.ChildFailedError:' }),
      exited(1, undefined, t(3), { signal: 'SIGTERM' }),
    ]);
    // Rank 1 was stopped by us after the failure was detected at t(2).
    const out = attributeFailure(a, [], t(2));
    expect(out.rank).toBe(0);
  });

  it('orders errors of their own kind by time', () => {
    const a = attempt([exited(0, 2, t(5), { error: 'KeyError: x', errorTime: t(4) }), exited(1, 3, t(3))]);
    expect(attributeFailure(a, [], t(3)).rank).toBe(1);
  });

  it('a fatal XID on a job GPU is a node fault of that node, whatever the ranks did', () => {
    const a = attempt([exited(0, 1, t(2), { error: 'RuntimeError: NCCL communicator was aborted' }), exited(1, 1, t(2))]);
    const xid = FaultSignal.create({ kind: 'xid', node: 'sim-node-1', gpu: 3, xid: 79, detail: 'ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS', time: t(1), failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
    const out = attributeFailure(a, [xid], t(1));
    expect(out).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node: 'sim-node-1', rank: 1, faultyNodes: ['sim-node-1'] });
    expect(out.reason).toBe('node fault: XID 79 (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS) on GPU 3 of sim-node-1');
  });

  it('a contained GPU error restarts without blaming the node', () => {
    const xid = FaultSignal.create({ kind: 'xid', node: 'sim-node-0', gpu: 2, xid: 94, time: t(1), failureClass: FailureClass.FAILURE_CLASS_GPU_CONTAINED });
    const out = attributeFailure(attempt([]), [xid], t(1));
    expect(out).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_GPU_CONTAINED, node: 'sim-node-0', faultyNodes: [] });
  });

  it('a lost node is blamed even when the other ranks failed first', () => {
    const lost = FaultSignal.create({ kind: 'node-lost', node: 'sim-node-0', detail: 'node sim-node-0 lost: no heartbeat for 4s', time: t(1), failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
    const out = attributeFailure(attempt([exited(1, 1, t(0), { error: 'RuntimeError: Connection reset by peer' })]), [lost], t(0));
    expect(out).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node: 'sim-node-0', faultyNodes: ['sim-node-0'] });
  });

  it('follows the health config XID policy: 79/48/95/119 are node faults, 94/31/43 restart the application, 63/92 leave the attempt running', () => {
    const cls = (xid: number, fatal?: boolean) => xidFailureClass({ xid, fatal }, DEFAULT_HEALTH_CONFIG).failureClass;
    for (const x of [48, 79, 95, 119, 140]) expect(cls(x)).toBe(FailureClass.FAILURE_CLASS_NODE_FAULT);
    for (const x of [94, 31, 43]) expect(cls(x)).toBe(FailureClass.FAILURE_CLASS_GPU_CONTAINED);
    for (const x of [63, 92]) expect(cls(x)).toBeUndefined();
    expect(cls(149, false)).toBeUndefined();
    expect(cls(149, true)).toBe(FailureClass.FAILURE_CLASS_NODE_FAULT);
    // An operator's override applies at once.
    const config = resolveHealthConfig({ xid: { policy: { ...DEFAULT_HEALTH_CONFIG.xid.policy, 79: { action: 'warn' } } } });
    expect(xidFailureClass({ xid: 79 }, config).failureClass).toBeUndefined();
  });

  it('an application XID that follows a rank\'s own crash is its echo: the crash is the failure', () => {
    const xid = FaultSignal.create({ kind: 'xid', node: 'sim-node-1', xid: 43, time: t(2), failureClass: FailureClass.FAILURE_CLASS_GPU_CONTAINED });
    const out = attributeFailure(attempt([exited(1, 3, t(1), { error: 'RuntimeError: CUDA error: an illegal memory access was encountered' })]), [xid], t(1));
    expect(out).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_APPLICATION, rank: 1 });
    const first = attributeFailure(attempt([exited(1, 3, t(3))]), [xid], t(2));
    expect(first.failureClass).toBe(FailureClass.FAILURE_CLASS_GPU_CONTAINED);
  });

  it('never blames a node without a node-fault signal, and always names a rank of the placement when ranks failed', () => {
    const status = fc.record({
      rank: fc.integer({ min: 0, max: 1 }), code: fc.integer({ min: 0, max: 3 }), at: fc.integer({ min: 0, max: 30 }),
      error: fc.constantFrom('', 'ValueError: x', 'RuntimeError: Connection closed by peer', 'DistBackendError: NCCL error: remote process exited'),
    });
    fc.assert(fc.property(fc.array(status, { maxLength: 4 }), fc.boolean(), (raw, withXid) => {
      const ranks = [...new Map(raw.map((r) => [r.rank, exited(r.rank, r.code, t(r.at), { error: r.error })])).values()];
      const signals = withXid ? [FaultSignal.create({ kind: 'xid', node: 'sim-node-1', xid: 79, time: t(0), failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT })] : [];
      const out = attributeFailure(attempt(ranks), signals, t(0));
      if (!withXid) expect(out.faultyNodes).toEqual([]);
      else expect(out.faultyNodes).toEqual(['sim-node-1']);
      if (!withXid && ranks.some((r) => (r.exitCode ?? 0) !== 0)) expect([0, 1]).toContain(out.rank);
    }));
  });
});

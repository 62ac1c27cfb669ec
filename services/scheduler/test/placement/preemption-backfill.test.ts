import { describe, expect, it } from 'vitest';
import { compareVictims, lostWorkSec, planCycle, PRIORITY_CLASSES } from '../../src/placement/index.js';
import { cluster, job, occupy } from './fixtures.js';

const { critical, high, normal, low, preemptible } = PRIORITY_CLASSES;
const MIN = 60_000;

describe('preemption', () => {
  it('orders victims by priority, then work lost since the last checkpoint, then size', () => {
    const now = 100 * MIN;
    const base = { tenant: 't', ranks: [{ rank: 0, node: 'n', gpus: [0] }], timeLimitSec: 0 };
    const a = { ...base, id: 'a', priority: low, startTime: 0, lastCheckpointTime: 90 * MIN };
    const b = { ...base, id: 'b', priority: low, startTime: 95 * MIN };
    const c = { ...base, id: 'c', priority: preemptible, startTime: 0 };
    expect(lostWorkSec(a, now)).toBe(600);
    expect([a, b, c].sort((x, y) => compareVictims(x, y, now)).map((j) => j.id)).toEqual(['c', 'b', 'a']);
  });

  it('preempts only strictly lower priority, and only as many jobs as the gang needs', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4 });
    const running = [
      occupy(nodes, 'same', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: high }),
      occupy(nodes, 'low-old', { n0001: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low, startTime: 0 }),
      occupy(nodes, 'low-new', { n0002: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low, startTime: 50 * MIN }),
      occupy(nodes, 'pre', { n0003: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: preemptible, startTime: 0 }),
    ];
    const plan = planCycle(nodes, [job('g', { nodes: 2, priority: high })], { running, now: 60 * MIN });
    expect(plan.preemptions.map((p) => p.jobId)).toEqual(['pre', 'low-new']);
    expect(plan.preemptions[0]!.reason).toBe('lower priority (preemptible < high)');
    expect(plan.nominations).toEqual([{ jobId: 'g', nodes: ['n0002', 'n0003'], waitingFor: ['pre', 'low-new'] }]);
    expect(plan.placements).toEqual([]);
  });

  it('never preempts equal or higher priority', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 2 });
    const running = [occupy(nodes, 'a', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: normal }), occupy(nodes, 'b', { n0001: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: critical })];
    const plan = planCycle(nodes, [job('g', { priority: normal })], { running, now: MIN });
    expect(plan.preemptions).toEqual([]);
    expect(plan.unschedulable[0]!.reason).toBe('no-capacity');
  });

  it('does not preempt a job again inside the anti-loop window', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 1 });
    const running = [occupy(nodes, 'v', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low, preemptedAt: 50 * MIN })];
    const opts = { running, config: { preemption: { windowSec: 30 * 60 } } };
    expect(planCycle(nodes, [job('g', { priority: high })], { ...opts, now: 60 * MIN }).preemptions).toEqual([]);
    expect(planCycle(nodes, [job('g', { priority: high })], { ...opts, now: 81 * MIN }).preemptions).toHaveLength(1);
  });

  it('waits for terminating victims instead of choosing new ones', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 2 });
    const running = [
      occupy(nodes, 'going', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low, terminating: true }),
      occupy(nodes, 'other', { n0001: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low }),
    ];
    const plan = planCycle(nodes, [job('g', { priority: high }), job('h', { priority: normal, submitTime: 1 })], { running, now: MIN });
    expect(plan.preemptions.map((p) => p.preemptorId)).toEqual(['h']);
    expect(plan.nominations.map((n) => [n.jobId, n.waitingFor])).toEqual([
      ['g', ['going']],
      ['h', ['other']],
    ]);
  });

  it('picks victims inside one switch for a same-switch gang', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 2, nodesPerLeaf: 2 });
    // The two cheapest victims (p0, l1... by priority: p0, then the low ones) are not all in one
    // leaf; leaf-0 holds a preemptible and a low job, leaf-1 a low and a normal one: clear leaf-0.
    const running = [
      occupy(nodes, 'p0', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: preemptible }),
      occupy(nodes, 'l1', { n0001: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low }),
      occupy(nodes, 'p2', { n0002: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: low }),
      occupy(nodes, 'l3', { n0003: [0, 1, 2, 3, 4, 5, 6, 7] }, { priority: normal }),
    ];
    const plan = planCycle(nodes, [job('g', { nodes: 2, priority: high, topology: 'same-switch' })], { running, now: MIN });
    expect(plan.preemptions.map((p) => p.jobId).sort()).toEqual(['l1', 'p0']);
  });

  it('holds the nominated nodes so lower jobs in the same cycle cannot take their free GPUs', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 1 });
    const running = [occupy(nodes, 'v', { n0000: [0, 1, 2, 3] }, { priority: low })];
    const plan = planCycle(nodes, [job('g', { priority: high }), job('small', { priority: normal, gpusPerNode: 2, submitTime: 1 })], { running, now: MIN });
    expect(plan.preemptions.map((p) => p.jobId)).toEqual(['v']);
    expect(plan.placements).toEqual([]);
  });
});

describe('EASY backfill', () => {
  // Two nodes; a running job holds node 0 for another hour, node 1 is half busy for two hours.
  function setup() {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 2 });
    const running = [
      occupy(nodes, 'r0', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { startTime: 0, timeLimitSec: 3600 }),
      occupy(nodes, 'r1', { n0001: [0, 1, 2, 3] }, { startTime: 0, timeLimitSec: 7200 }),
    ];
    return { nodes, running, now: 0 };
  }

  it('reserves the earliest start for the head job on the nodes it will use', () => {
    const { nodes, running, now } = setup();
    const plan = planCycle(nodes, [job('head', { nodes: 2, timeLimitSec: 3600 })], { running, now });
    expect(plan.reservations).toEqual([{ jobId: 'head', startTime: 7200_000, nodes: ['n0000', 'n0001'] }]);
    expect(plan.unschedulable[0]!.reservation).toEqual(plan.reservations[0]);
    expect(plan.unschedulable[0]!.message).toContain('reserved to start by 1970-01-01T02:00:00Z');
  });

  it('backfills a job that ends before the reservation', () => {
    const { nodes, running, now } = setup();
    const plan = planCycle(nodes, [job('head', { nodes: 2 }), job('short', { gpusPerNode: 4, timeLimitSec: 3600, submitTime: 1 })], { running, now });
    expect(plan.placements.map((p) => p.jobId)).toEqual(['short']);
    expect(plan.placements[0]!.explanation).toContain('backfilled: ends by');
  });

  it('refuses a job that would delay the reservation, and says so', () => {
    const { nodes, running, now } = setup();
    const plan = planCycle(nodes, [job('head', { nodes: 2 }), job('long', { gpusPerNode: 4, timeLimitSec: 4 * 3600, submitTime: 1 })], { running, now });
    expect(plan.placements).toEqual([]);
    const long = plan.unschedulable.find((u) => u.jobId === 'long')!;
    expect(long.reason).toBe('reservation');
    expect(long.rejections).toEqual({ 'insufficient free GPUs': 1, 'reserved for head': 1 });
  });

  it('lets a long job use nodes the reservation does not need', () => {
    // n0000 (H100) frees at 1h, n0001 (H100) at 2h, n0002 (H100) and n0003 (B200) are free.
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 4, model: (i) => (i === 3 ? 'B200' : 'H100') });
    const running = [
      occupy(nodes, 'r0', { n0000: [0, 1, 2, 3, 4, 5, 6, 7] }, { startTime: 0, timeLimitSec: 3600 }),
      occupy(nodes, 'r1', { n0001: [0, 1, 2, 3, 4, 5, 6, 7] }, { startTime: 0, timeLimitSec: 7200 }),
    ];
    const plan = planCycle(nodes, [job('head', { nodes: 2, gpuTypes: ['H100'] }), job('long', { timeLimitSec: 10 * 3600, submitTime: 1 })], { running, now: 0 });
    expect(plan.reservations).toEqual([{ jobId: 'head', startTime: 3600_000, nodes: ['n0000', 'n0002'] }]);
    expect(plan.placements.map((p) => [p.jobId, p.ranks[0]!.node])).toEqual([['long', 'n0003']]);
    expect(plan.placements[0]!.explanation).toContain('leaves the GPUs reserved for head');
  });

  it('uses the slack on a reserved node when the head needs only part of it', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 1 });
    const running = [occupy(nodes, 'r0', { n0000: [0, 1, 2, 3, 4, 5] }, { startTime: 0, timeLimitSec: 3600 })];
    // Head wants 8 GPUs at t=1h; node has 2 free now, so there is no slack for anyone.
    const full = planCycle(nodes, [job('head'), job('small', { gpusPerNode: 2, timeLimitSec: 36_000, submitTime: 1 })], { running, now: 0 });
    expect(full.placements).toEqual([]);
    // Head wants 6 GPUs: at t=1h the node has 8 free, slack 2, so a long 2-GPU job fits now.
    const part = planCycle(nodes, [job('head', { gpusPerNode: 6 }), job('small', { gpusPerNode: 2, timeLimitSec: 36_000, submitTime: 1 })], { running, now: 0 });
    expect(part.placements.map((p) => p.jobId)).toEqual(['small']);
    expect(part.reservations[0]!.startTime).toBe(3600_000);
  });

  it('gives no reservation when the GPUs are held by jobs without a time limit', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 1 });
    const running = [occupy(nodes, 'forever', { n0000: [0, 1, 2, 3] }, { timeLimitSec: 0 })];
    const plan = planCycle(nodes, [job('head'), job('other', { gpusPerNode: 4, submitTime: 1 })], { running, now: 0 });
    expect(plan.reservations).toEqual([]);
    expect(plan.placements.map((p) => p.jobId)).toEqual(['other']);
  });
});

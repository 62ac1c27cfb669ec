// The benchmark's Slurm-grade baseline (services/scheduler/bench/slurm.ts) does what its
// header says: multifactor priority, EASY backfill on time limits, topology/tree best effort.
import { describe, expect, it } from 'vitest';
import { PRIORITY_CLASSES } from '../../src/placement/index.js';
import { multifactorPriority, SLURM_DEFAULTS, slurmCycle, type SlurmSettings } from '../../bench/slurm.js';
import { cluster, job, occupy } from '../placement/fixtures.js';

const MIN = 60_000;
const ALL = [0, 1, 2, 3, 4, 5, 6, 7];
const settings: SlurmSettings = { ...SLURM_DEFAULTS, shares: { a: 1, b: 1 } };

describe('Slurm baseline: priority/multifactor', () => {
  it('adds weighted age, classic fair share 2^(-U/S), job size and QOS factors', () => {
    const now = 12 * 60 * MIN;
    const jobs = [
      job('old', { tenant: 'a', submitTime: 0, priority: PRIORITY_CLASSES.normal, nodes: 2 }),
      job('heavy-user', { tenant: 'b', submitTime: now, priority: PRIORITY_CLASSES.critical, nodes: 1, gpusPerNode: 4 }),
    ];
    // Tenant b used 3/4 of all usage with 1/2 of the shares: F = 2^(-0.75/0.5).
    const p = multifactorPriority(jobs, 64, { now, usage: { a: 100, b: 300 } }, settings);
    expect(p.get('old')).toBeCloseTo(1000 * 0.5 + 10_000 * 2 ** (-0.25 / 0.5) + 1000 * (16 / 64) + 10_000 * 0.5, 6);
    expect(p.get('heavy-user')).toBeCloseTo(0 + 10_000 * 2 ** (-0.75 / 0.5) + 1000 * (4 / 64) + 10_000 * 1, 6);
  });

  it('starts the higher-priority job first when only one fits', () => {
    const nodes = cluster({ leavesPerSpine: 1, nodesPerLeaf: 1 });
    const plan = slurmCycle(nodes, [job('lo', { priority: PRIORITY_CLASSES.low }), job('hi', { priority: PRIORITY_CLASSES.high, submitTime: 5 })], { running: [], now: 10, usage: {} }, settings);
    expect(plan.placements.map((p) => p.jobId)).toEqual(['hi']);
  });
});

describe('Slurm baseline: EASY backfill on time limits', () => {
  // 4 nodes; 3 held by a job whose limit ends at minute 60. The head job needs all 4.
  const world = () => {
    const nodes = cluster({ leavesPerSpine: 1, nodesPerLeaf: 4 });
    const running = [occupy(nodes, 'r', { n0000: ALL, n0001: ALL, n0002: ALL }, { startTime: 0, timeLimitSec: 60 * 60 })];
    const head = job('head', { nodes: 4, priority: PRIORITY_CLASSES.high });
    return { nodes, running, head };
  };

  it('backfills a job that ends, by its time limit, before the reservation', () => {
    const { nodes, running, head } = world();
    const short = job('short', { timeLimitSec: 30 * 60 });
    const plan = slurmCycle(nodes, [head, short], { running, now: 10 * MIN, usage: {} }, settings);
    expect(plan.placements.map((p) => [p.jobId, p.ranks[0]!.node])).toEqual([['short', 'n0003']]);
    expect(plan.unschedulable[0]).toMatchObject({ jobId: 'head', message: 'Resources (reserved)' });
  });

  it('does not backfill a job that would delay the reservation, nor one without a time limit', () => {
    const { nodes, running, head } = world();
    const long = job('long', { timeLimitSec: 120 * 60 });
    const forever = job('forever', { timeLimitSec: 0 });
    expect(slurmCycle(nodes, [head, long, forever], { running, now: 10 * MIN, usage: {} }, settings).placements).toEqual([]);
  });

  it('lets a long job take GPUs the reservation does not need', () => {
    const { nodes, running } = world();
    // The head needs 4 GPUs on each of 4 nodes: n0003 can spare 4 of its 8 to a long job.
    const head = job('head', { nodes: 4, gpusPerNode: 4, priority: PRIORITY_CLASSES.high });
    const plan = slurmCycle(nodes, [head, job('long4', { gpusPerNode: 4, timeLimitSec: 600 * 60 }), job('long4b', { gpusPerNode: 4, timeLimitSec: 600 * 60 })], { running, now: 10 * MIN, usage: {} }, settings);
    expect(plan.placements.map((p) => p.jobId)).toEqual(['long4']);
  });
});

describe('Slurm baseline: topology/tree', () => {
  it('puts a gang in the best-fit leaf switch', () => {
    const nodes = cluster({ leavesPerSpine: 2, nodesPerLeaf: 4 });
    const running = [occupy(nodes, 'r', { n0004: ALL, n0005: ALL })];
    const plan = slurmCycle(nodes, [job('g', { nodes: 2 })], { running, now: 0, usage: {} }, settings);
    expect(plan.placements[0]!.ranks.map((r) => r.node)).toEqual(['n0006', 'n0007']);
  });

  it('holds a same-switch gang for one leaf until max_switch_wait, then spreads it', () => {
    const nodes = cluster({ leavesPerSpine: 2, nodesPerLeaf: 2 });
    const running = [occupy(nodes, 'r', { n0000: ALL, n0002: ALL })];
    const g = job('g', { nodes: 2, topology: 'same-switch', submitTime: 0 });
    expect(slurmCycle(nodes, [g], { running, now: 60_000, usage: {} }, settings).placements).toEqual([]);
    expect(slurmCycle(nodes, [g], { running, now: 301_000, usage: {} }, settings).placements[0]!.ranks.map((r) => r.node)).toEqual(['n0001', 'n0003']);
  });
});

import { describe, expect, it } from 'vitest';
import { nearCompletion, parseSchedulingConfig, planCycle, PRIORITY_CLASSES, SchedulingConfigError } from '../../src/placement/index.js';
import { cluster, job, occupy } from './fixtures.js';

const { high, low } = PRIORITY_CLASSES;
const MIN = 60_000;
const ALL = [0, 1, 2, 3, 4, 5, 6, 7];

describe('preemption.nearCompletionFraction', () => {
  it('spares a job that has used that share of its time limit and takes one that has not', () => {
    const nodes = cluster({ spines: 1, leavesPerSpine: 1, nodesPerLeaf: 2 });
    // Both started at 0 with a 100-minute limit; at minute 90 `late` is 90% through it.
    const running = [
      occupy(nodes, 'late', { n0000: ALL }, { priority: low, startTime: 0, timeLimitSec: 100 * 60 }),
      occupy(nodes, 'early', { n0001: ALL }, { priority: low, startTime: 60 * MIN, timeLimitSec: 100 * 60 }),
    ];
    const gang = job('g', { nodes: 1, priority: high });
    const off = planCycle(nodes, [gang], { running, now: 90 * MIN });
    // Without the option the cheapest victim is `early` (least work since start) anyway: take
    // `late` as the only candidate to show the option decides.
    expect(off.preemptions.map((p) => p.jobId)).toEqual(['early']);
    const onlyLate = [running[0]!];
    expect(planCycle(nodes, [gang], { running: onlyLate, now: 90 * MIN }).preemptions.map((p) => p.jobId)).toEqual(['late']);
    const on = { preemption: { nearCompletionFraction: 0.8 } };
    expect(planCycle(nodes, [gang], { running: onlyLate, now: 90 * MIN, config: on }).preemptions).toEqual([]);
    // At minute 70 it is 70% through: below the threshold, so it may be preempted again.
    expect(planCycle(nodes, [gang], { running: onlyLate, now: 70 * MIN, config: on }).preemptions.map((p) => p.jobId)).toEqual(['late']);
  });

  it('never covers a job without a time limit, and is off at 0', () => {
    const forever = { id: 'f', tenant: 't', priority: low, ranks: [], startTime: 0, timeLimitSec: 0 };
    const limited = { ...forever, timeLimitSec: 60 };
    expect(nearCompletion(forever, 10 * MIN, 0.5)).toBe(false);
    expect(nearCompletion(limited, 10 * MIN, 0.5)).toBe(true);
    expect(nearCompletion(limited, 10 * MIN, 0)).toBe(false);
    expect(nearCompletion(limited, 29_000, 0.5)).toBe(false);
  });

  it('is parsed from the config file and rejected outside [0, 1]', () => {
    expect(parseSchedulingConfig({ preemption: { nearCompletionFraction: 0.9 } }).preemption.nearCompletionFraction).toBe(0.9);
    expect(parseSchedulingConfig({}).preemption.nearCompletionFraction).toBe(0);
    expect(() => parseSchedulingConfig({ preemption: { nearCompletionFraction: 1.5 } })).toThrow(SchedulingConfigError);
    expect(() => parseSchedulingConfig({ preemption: { nearCompletionFraction: 1.5 } })).toThrow('preemption.nearCompletionFraction: expected a number >= 0 and <= 1, got 1.5');
  });
});

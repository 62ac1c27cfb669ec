// advanceHealthInSteps (the scheduler's window, with the event loop free between groups of
// nodes) decides and stores exactly what advanceHealth decides, window after window, and gives
// the event loop back between its groups.
import { describe, expect, it } from 'vitest';
import { advanceHealth, advanceHealthInSteps, emptyHealthState, resolveHealthConfig, serializeHealthState } from '../../src/health/index.js';
import type { HealthWindowInput } from '../../src/health/types.js';
import { batch, jitter, MIN, T0 } from './fixtures.js';

const config = resolveHealthConfig({ windowSec: 60, baseline: { bucketSec: 60, buckets: 30, minBuckets: 5, learnBelowZ: 3 } });
const names = Array.from({ length: 23 }, (_, i) => `n-${String(i).padStart(2, '0')}`);

function input(k: number): HealthWindowInput {
  const nowMs = T0 + k * MIN;
  return {
    nowMs,
    // Node 7 runs hotter from window 6 on: the windows must reach decisions, not only baselines.
    batches: names.map((n, i) => batch(n, nowMs - 1_000, { gpu: () => ({ temp: 68 + 2 * jitter(i, k) + (i === 7 && k >= 6 ? 25 : 0), sbeRate: i === 7 && k >= 6 ? 50 : 0 }) })),
    heartbeats: Object.fromEntries(names.map((n) => [n, { lastSeenMs: nowMs - 500 }])),
    nodes: names.map((name, i) => ({ name, leafSwitch: `leaf-${i % 3}` })),
    jobs: [{ id: 'job-a', nodes: names.slice(0, 8) }],
  };
}

describe('advanceHealthInSteps', () => {
  it('decides and stores what advanceHealth does, window after window, pausing between groups of nodes', async () => {
    const whole = emptyHealthState();
    const inSteps = emptyHealthState();
    let pauses = 0;
    for (let k = 0; k < 12; k++) {
      const a = advanceHealth(whole, input(k), config);
      // Batches given up front for one half of the windows, read per step for the other.
      const all = input(k);
      const asked: string[][] = [];
      const batchesOf = k % 2 === 0 ? undefined : async (names: readonly string[]) => {
        asked.push([...names]);
        return input(k).batches!.filter((b) => names.includes(b.node));
      };
      const b = await advanceHealthInSteps(inSteps, batchesOf ? { ...all, batches: [] } : all, config, { size: 5, batchesOf, pause: async () => { pauses++; } });
      if (batchesOf) expect(asked.flat()).toEqual(names);
      expect(b.nodes).toEqual(a.nodes);
      expect(b.findings).toEqual(a.findings);
      expect(b.sharedFaults).toEqual(a.sharedFaults);
      expect(serializeHealthState(b.state)).toBe(serializeHealthState(a.state));
    }
    expect(pauses).toBe(12 * Math.ceil(names.length / 5));
    expect(serializeHealthState(whole)).toContain('SUSPECT');
  });
});

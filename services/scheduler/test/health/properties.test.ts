// Properties over generated inputs: healthy telemetry never raises anything; arbitrary
// (even nonsensical) telemetry never makes the detector produce a non-finite number or a
// state that does not survive JSON.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HealthEvaluator, resolveHealthConfig } from '../../src/health/index.js';
import type { HealthWindowInput } from '../../src/health/types.js';
import { batch, MIN, nfs, nodeNames, port, T0 } from './fixtures.js';

const config = resolveHealthConfig({ windowSec: 60, baseline: { bucketSec: 60, buckets: 20, minBuckets: 4, learnBelowZ: 3 } });

describe('properties', () => {
  it('a cluster with perfectly normal telemetry never leaves READY', () => {
    // Every value moves within a band narrower than its signal's floor (the smallest change
    // that matters), around one common level; no errors, no XIDs, regular heartbeats.
    const unit = fc.double({ min: 0, max: 1, noNaN: true });
    const windowOf = fc.array(fc.array(unit, { minLength: 8, maxLength: 8 }), { minLength: 12, maxLength: 12 });
    fc.assert(fc.property(fc.integer({ min: 6, max: 12 }), fc.array(windowOf, { minLength: 12, maxLength: 25 }), (n, windows) => {
      const names = nodeNames(n);
      const ev = new HealthEvaluator(config);
      windows.forEach((w, k) => {
        const now = T0 + (k + 1) * MIN;
        const input: HealthWindowInput = {
          nowMs: now,
          nodes: names.map((name) => ({ name, leafSwitch: 'leaf-a' })),
          batches: names.map((name, i) => {
            const u = w[i]!;
            return batch(name, now, {
              gpu: (g) => ({ temp: 67 + 3 * u[g]!, util: 92 + 6 * u[(g + 1) % 8]!, sm: 1865 + 30 * u[(g + 2) % 8]!, power: 850 + 40 * u[(g + 3) % 8]! }),
              mounts: [nfs('10.0.0.11:/checkpoints', { rttMs: 0.5 + 5 * u[4]!, backlog: 5 * u[5]!, slots: 0.02 + 0.1 * u[6]! })],
              ports: [port()],
            });
          }),
          heartbeats: Object.fromEntries(names.map((name, i) => [name, { lastSeenMs: now - 5000 * w[i]![7]!, longestGapMs: 4000 + 4000 * w[i]![7]! }])),
          jobs: [{ id: 'job', nodes: names, lastLogMs: now - 10_000 }],
        };
        const out = ev.evaluate(input);
        expect(out.transitions).toEqual([]);
        expect(out.actions).toEqual([]);
        expect(out.sharedFaults).toEqual([]);
        expect(out.findings).toEqual([]);
        for (const d of out.nodes) expect(d.score).toBeLessThan(config.states.suspect.exit);
      });
    }), { numRuns: 25 });
  });

  it('scores and state stay finite and JSON-safe for arbitrary inputs', () => {
    const num = fc.oneof(fc.double(), fc.constant(0), fc.integer({ min: -1000, max: 1e9 }));
    const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const gpuArb = fc.record({
      index: fc.integer({ min: 0, max: 9 }), util: opt(num), temp: opt(num), power: opt(num), sm: opt(num), sbeRate: opt(num), dbeRate: opt(num),
      pcieRate: opt(num), remapCorrectable: opt(fc.integer({ min: 0, max: 1e6 })), nvlinkCrc: opt(fc.integer({ min: 0, max: 1e12 })),
      remapPending: fc.boolean(), remapFailure: fc.boolean(), thermal: opt(num), lost: fc.boolean(),
    });
    const nodeArb = fc.record({
      gpus: fc.array(gpuArb, { maxLength: 4 }),
      nfs: fc.record({ rttMs: opt(num), executeMs: opt(num), retrans: opt(num), timeouts: opt(num), backlog: opt(num), slots: opt(num) }),
      symbol: opt(num), downs: opt(num), gap: opt(num), lastSeen: num, interval: fc.integer({ min: 0, max: 3600 }),
    });
    fc.assert(fc.property(fc.array(fc.array(nodeArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 6 }), (windows) => {
      const ev = new HealthEvaluator(config);
      windows.forEach((nodes, k) => {
        const now = T0 + (k + 1) * MIN;
        const names = nodes.map((_, i) => `x${i}`);
        const out = ev.evaluate({
          nowMs: now,
          batches: nodes.map((nd, i) => {
            const b = batch(names[i]!, now, { gpu: () => ({}), gpuCount: 0, mounts: [nfs('s:/e', nd.nfs)], ports: [port({ ...(nd.symbol !== undefined ? { symbol: nd.symbol } : {}), ...(nd.downs !== undefined ? { downs: nd.downs } : {}) })], intervalSec: nd.interval });
            b.gpus = nd.gpus.map((g) => batch(names[i]!, now, { gpuCount: 1, gpu: () => g }).gpus[0]!).map((g, j) => ({ ...g, index: nd.gpus[j]!.index }));
            return b;
          }),
          heartbeats: Object.fromEntries(nodes.map((nd, i) => [names[i]!, { lastSeenMs: nd.lastSeen, ...(nd.gap !== undefined ? { longestGapMs: nd.gap } : {}) }])),
          jobs: [{ id: 'j', nodes: names, lastLogMs: now - 1000 }],
        });
        for (const d of out.nodes) {
          expect(Number.isFinite(d.score)).toBe(true);
          for (const r of d.reasons) expect(Number.isFinite(r.contribution)).toBe(true);
        }
        const json = ev.toJSON();
        expect(JSON.parse(json)).toEqual(ev.state);
      });
    }), { numRuns: 40 });
  });
});

describe('garbage in', () => {
  it('NaN and Infinity in every reading leave no trace in scores or state', () => {
    const ev = new HealthEvaluator(config);
    for (let k = 1; k <= 12; k++) {
      const now = T0 + k * MIN;
      const bad = k % 2 === 0 ? Number.NaN : Number.POSITIVE_INFINITY;
      const out = ev.evaluate({
        nowMs: now,
        batches: nodeNames(6).map((n) => batch(n, now, {
          gpu: () => ({ util: bad, temp: bad, power: bad, sm: bad, sbeRate: bad, dbeRate: bad, pcieRate: bad, thermal: bad }),
          mounts: [nfs('s:/e', { rttMs: bad, executeMs: bad, retrans: bad, timeouts: bad, backlog: bad, slots: bad })],
          ports: [port({ symbol: bad, downs: bad, retrans: bad })],
        })),
        heartbeats: Object.fromEntries(nodeNames(6).map((n) => [n, { lastSeenMs: bad, longestGapMs: bad }])),
        jobs: [{ id: 'j', nodes: nodeNames(6), lastLogMs: bad }],
      });
      for (const d of out.nodes) expect(Number.isFinite(d.score)).toBe(true);
      expect(JSON.parse(ev.toJSON())).toEqual(ev.state);
    }
  });
});

import { describe, expect, it } from 'vitest';
import {
  evaluateHealth, emptyHealthState, HealthEvaluator, HealthStateError, parseHealthState, resolveHealthConfig, serializeHealthState,
} from '../../src/health/index.js';
import type { HealthWindowInput, JobInfo } from '../../src/health/types.js';
import { batch, gpu, harness, jitter, MIN, nfs, nodeNames, port, T0, xid } from './fixtures.js';

const NODES = nodeNames(10);
const healthy = (k: number, names = NODES, patch: (node: string, i: number) => Parameters<typeof batch>[2] = () => ({})): Omit<HealthWindowInput, 'nowMs'> => ({
  nodes: names.map((name) => ({ name, leafSwitch: 'leaf-a' })),
  batches: names.map((n, i) => batch(n, T0 + k * MIN, { gpu: (g) => ({ temp: 68 + jitter(i, k, g) }), ...patch(n, i) })),
  heartbeats: Object.fromEntries(names.map((n) => [n, { lastSeenMs: T0 + k * MIN - 2000, longestGapMs: 5000 }])),
});
const status = (out: ReturnType<HealthEvaluator['evaluate']>, node: string): string => out.nodes.find((d) => d.node === node)!.status;

describe('baselines: own and peers (median/MAD)', () => {
  it('a node whose corrected-ECC rate departs from its own baseline and its peers becomes SUSPECT, with the reason', () => {
    const h = harness({ deviation: { halfLifeSec: 60 } });
    for (let k = 1; k <= 8; k++) expect(h.window(k, healthy(k)).transitions).toEqual([]);
    const sick = (k: number) => healthy(k, NODES, (n) => (n === 'n03' ? { gpu: (g) => ({ sbeRate: g === 5 ? 0.05 : 0 }) } : {}));
    const first = h.window(9, sick(9));
    expect(status(first, 'n03')).toBe('READY');
    let out = first;
    for (let k = 10; k <= 11; k++) out = h.window(k, sick(k));
    const d = out.nodes.find((x) => x.node === 'n03')!;
    expect(d.status).toBe('SUSPECT');
    const r = d.reasons.find((x) => x.signal === 'gpu.ecc_sbe_rate')!;
    expect(r).toMatchObject({ value: 0.05, baseline: 0, peerMedian: 0, gpu: 5 });
    expect(r.zOwn).toBeGreaterThan(10);
    expect(r.zPeer).toBeGreaterThan(10);
    expect(out.nodes.filter((x) => x.status !== 'READY').map((x) => x.node)).toEqual(['n03']);
  });

  it('a node that always runs hot is its own normal; one that heats up is not', () => {
    const h = harness({ deviation: { halfLifeSec: 60 } });
    const temps = (k: number) => healthy(k, NODES, (n, i) => ({
      gpu: (g) => ({ temp: 68 + jitter(i, k, g) + (n === 'n01' ? 5 : 0) + (n === 'n02' && k > 8 ? 22 : 0) }),
    }));
    let out = h.window(1, temps(1));
    for (let k = 2; k <= 20; k++) out = h.window(k, temps(k));
    expect(status(out, 'n01')).toBe('READY');
    expect(out.nodes.find((d) => d.node === 'n01')!.reasons.filter((r) => r.signal === 'gpu.temperature')).toEqual([]);
    const hot = out.nodes.find((d) => d.node === 'n02')!;
    expect(hot.status).toBe('SUSPECT');
    expect(hot.reasons[0]).toMatchObject({ signal: 'gpu.temperature' });
    // Baseline and peers: the worst GPU of a normal node (68 °C +- 1).
    expect(hot.reasons[0]!.baseline).toBeGreaterThan(67);
    expect(hot.reasons[0]!.baseline).toBeLessThan(70);
    expect(hot.reasons[0]!.peerMedian).toBeLessThan(70);
  });

  it('remapped-row growth is judged against peers only: a GPU degrading since before monitoring began is still caught', () => {
    const h = harness({ deviation: { halfLifeSec: 60 } });
    // 130 rows at the start, ~5 more per day (the 504-GPU report's GPU), 1 per 5 h here.
    const rows = (k: number) => 130 + Math.floor(k / 2);
    let out = h.window(1, healthy(1));
    for (let k = 2; k <= 40; k++) out = h.window(k, healthy(k, NODES, (n) => (n === 'n07' ? { gpu: (g) => (g === 2 ? { remapCorrectable: rows(k), remapPending: true } : {}) } : {})));
    const d = out.nodes.find((x) => x.node === 'n07')!;
    expect(d.status).not.toBe('READY');
    expect(d.reasons.map((r) => r.signal)).toEqual(expect.arrayContaining(['gpu.remap_growth', 'gpu.remap_pending']));
  });
});

describe('hysteresis', () => {
  // Instant evidence (tiny half-life) so that the score is a step function of the input.
  const weighted = (w: number) => harness({ deviation: { halfLifeSec: 0.001 }, signals: { 'gpu.remap_pending': { weight: w / 7 } } });
  const flagged = (k: number, on: boolean) => healthy(k, NODES, (n) => (n === 'n00' && on ? { gpu: (g) => ({ remapPending: g === 0 }) } : {}));

  it('enters SUSPECT after enterWindows windows at or above enter, and leaves after exitWindows below exit', () => {
    const h = weighted(5);
    expect(status(h.window(1, flagged(1, true)), 'n00')).toBe('READY');
    const entered = h.window(2, flagged(2, true));
    expect(entered.transitions).toEqual([expect.objectContaining({ node: 'n00', from: 'READY', to: 'SUSPECT', atMs: T0 + 2 * MIN })]);
    // Hovering between exit and enter keeps the state (hysteresis).
    for (let k = 3; k <= 5; k++) expect(status(h.window(k, flagged(k, true)), 'n00')).toBe('SUSPECT');
    for (let k = 6; k <= 10; k++) expect(status(h.window(k, flagged(k, false)), 'n00'), `window ${k}`).toBe('SUSPECT');
    const left = h.window(11, flagged(11, false));
    expect(left.transitions).toEqual([expect.objectContaining({ from: 'SUSPECT', to: 'READY' })]);
  });

  it('one window above the threshold is not enough', () => {
    const h = weighted(5);
    h.window(1, flagged(1, true));
    for (let k = 2; k <= 6; k++) expect(status(h.window(k, flagged(k, false)), 'n00')).toBe('READY');
  });

  it('QUARANTINED after quarantine.enterWindows; a score quarantine ends after quarantine.exitWindows clean windows', () => {
    const h = weighted(13);
    const seen: string[] = [];
    for (let k = 1; k <= 3; k++) seen.push(...h.window(k, flagged(k, true)).transitions.map((t) => `${t.from}->${t.to}@${k}`));
    expect(seen).toEqual(['READY->SUSPECT@2', 'SUSPECT->QUARANTINED@3']);
    for (let k = 4; k <= 14; k++) expect(status(h.window(k, flagged(k, false)), 'n00')).toBe('QUARANTINED');
    expect(h.window(15, flagged(15, false)).transitions).toEqual([expect.objectContaining({ from: 'QUARANTINED', to: 'READY' })]);
  });

  it('without autoRelease a quarantine waits for an operator', () => {
    const h = harness({ deviation: { halfLifeSec: 0.001 }, signals: { 'gpu.remap_pending': { weight: 13 / 7 } }, states: { quarantine: { autoRelease: false } } });
    for (let k = 1; k <= 3; k++) h.window(k, flagged(k, true));
    for (let k = 4; k <= 30; k++) expect(status(h.window(k, flagged(k, false)), 'n00')).toBe('QUARANTINED');
    const out = h.window(31, { ...flagged(31, false), operator: [{ node: 'n00', action: 'release', reason: 'checked' }] });
    expect(out.transitions).toEqual([expect.objectContaining({ from: 'QUARANTINED', to: 'READY', reason: 'released by operator: checked' })]);
  });
});

describe('XID policy', () => {
  const warm = (h: ReturnType<typeof harness>) => {
    for (let k = 1; k <= 3; k++) h.window(k, healthy(k));
  };

  it('XID 79 reboots and quarantines at once; the hold lasts until released', () => {
    const h = harness();
    warm(h);
    const out = h.window(4, { ...healthy(4), xids: [xid('n02', 79, T0 + 4 * MIN - 1000, { gpu: 6 })] });
    expect(out.actions).toEqual([expect.objectContaining({ node: 'n02', action: 'reboot', xid: 79, gpu: 6 })]);
    expect(status(out, 'n02')).toBe('QUARANTINED');
    expect(out.nodes.find((d) => d.node === 'n02')!.hold).toMatchObject({ action: 'reboot' });
    for (let k = 5; k <= 30; k++) expect(status(h.window(k, healthy(k)), 'n02')).toBe('QUARANTINED');
    expect(status(h.window(31, { ...healthy(31), operator: [{ node: 'n02', action: 'release' }] }), 'n02')).toBe('READY');
  });

  it('after a remediation the node must stay clean for quarantine.exitWindows before it is READY', () => {
    const h = harness();
    warm(h);
    h.window(4, { ...healthy(4), xids: [xid('n02', 119, T0 + 4 * MIN - 1000)] });
    h.window(5, { ...healthy(5), operator: [{ node: 'n02', action: 'remediated', reason: 'GPU reset' }] });
    // The remediation window itself is the first of the 12 clean ones.
    for (let k = 6; k <= 15; k++) expect(status(h.window(k, healthy(k)), 'n02'), `window ${k}`).toBe('QUARANTINED');
    expect(status(h.window(16, healthy(16)), 'n02')).toBe('READY');
  });

  it('a contained error (94) restarts the application and does not blame the node', () => {
    const h = harness();
    warm(h);
    const out = h.window(4, { ...healthy(4), xids: [xid('n01', 94, T0 + 4 * MIN - 1000, { causeClass: 'memory' })] });
    expect(out.actions).toEqual([expect.objectContaining({ node: 'n01', action: 'restart-app' })]);
    expect(status(out, 'n01')).toBe('READY');
  });

  it('the same application XID three times on one GPU drains the node after its job', () => {
    const h = harness();
    warm(h);
    const t = T0 + 4 * MIN;
    const out = h.window(4, { ...healthy(4), xids: [xid('n05', 31, t - 3000, { gpu: 1 }), xid('n05', 31, t - 2000, { gpu: 1 }), xid('n05', 31, t - 1000, { gpu: 1 })] });
    expect(out.actions.map((a) => a.action)).toEqual(['restart-app', 'restart-app', 'drain-after-job']);
    expect(status(out, 'n05')).toBe('SUSPECT');
  });

  it('63 with a remapping failure on that GPU quarantines; a redelivered event is not acted on twice', () => {
    const h = harness();
    warm(h);
    const b = healthy(4, NODES, (n) => (n === 'n04' ? { gpu: (g) => ({ remapFailure: g === 3 }) } : {}));
    const e = xid('n04', 63, T0 + 4 * MIN - 1000, { gpu: 3, causeClass: 'memory', id: 'same' });
    const out = h.window(4, { ...b, xids: [e, e] });
    expect(out.actions).toEqual([expect.objectContaining({ action: 'quarantine-now', xid: 63 })]);
    expect(h.window(5, { ...healthy(5), xids: [e] }).actions).toEqual([]);
  });

  it('NVLink5: Nonfatal only adds points, Fatal resets the GPU', () => {
    const h = harness();
    warm(h);
    const warn = h.window(4, { ...healthy(4), xids: [xid('n06', 145, T0 + 4 * MIN - 1000, { fatal: false, causeClass: 'nvlink' })] });
    expect(status(warn, 'n06')).toBe('READY');
    expect(warn.nodes.find((d) => d.node === 'n06')!.reasons).toEqual([expect.objectContaining({ signal: 'xid.nvlink' })]);
    const fatal = h.window(5, { ...healthy(5), xids: [xid('n06', 145, T0 + 5 * MIN - 1000, { fatal: true, causeClass: 'nvlink' })] });
    expect(fatal.actions).toEqual([expect.objectContaining({ action: 'reset-gpu' })]);
    expect(status(fatal, 'n06')).toBe('QUARANTINED');
  });

  it('operators override entries through the config', () => {
    const h = harness({ xid: { policy: { 94: { action: 'quarantine-now' } } } });
    warm(h);
    expect(status(h.window(4, { ...healthy(4), xids: [xid('n01', 94, T0 + 4 * MIN - 1000)] }), 'n01')).toBe('QUARANTINED');
  });
});

describe('inventory', () => {
  it('a GPU gone from the inventory for missingBatches batches takes the configured action', () => {
    const h = harness();
    for (let k = 1; k <= 3; k++) h.window(k, healthy(k));
    const without = (k: number) => healthy(k, NODES, (n) => (n === 'n08' ? { gpus: [0, 1, 2, 4, 5, 6, 7].map((i) => gpu(n, { index: i })) } : {}));
    expect(h.window(4, without(4)).actions).toEqual([]);
    const out = h.window(5, without(5));
    expect(out.actions).toEqual([expect.objectContaining({ node: 'n08', action: 'quarantine-now', gpu: 3, gpuUuid: 'GPU-n08-3' })]);
    expect(out.actions[0]!.reason).toMatch(/GPU-n08-3 \(index 3\) is missing from the inventory/);
    expect(status(out, 'n08')).toBe('QUARANTINED');
  });

  it('an unreadable GPU ("[GPU is lost]") counts as missing; a failed GPU collector does not', () => {
    const h = harness();
    for (let k = 1; k <= 3; k++) h.window(k, healthy(k));
    for (let k = 4; k <= 6; k++) expect(h.window(k, healthy(k, NODES, (n) => (n === 'n01' ? { gpuCollectorFailed: true } : {}))).actions).toEqual([]);
    const lost = (k: number) => healthy(k, NODES, (n) => (n === 'n02' ? { gpu: (g) => (g === 5 ? { lost: true } : {}) } : {}));
    h.window(7, lost(7));
    expect(h.window(8, lost(8)).actions).toEqual([expect.objectContaining({ node: 'n02', gpu: 5 })]);
  });
});

describe('shared faults', () => {
  const NFS = '10.0.0.11:/checkpoints';
  const many = nodeNames(12);
  const stalled = (k: number, who: (n: string) => boolean) => healthy(k, many, (n) => ({
    mounts: [nfs(NFS, who(n) ? { rttMs: 8000, executeMs: 20000, retrans: 2, timeouts: 0.4, backlog: 900, slots: 1 } : {})],
  }));

  it('a storage target that degrades on many nodes at once is flagged, and its hosts are not escalated', () => {
    const h = harness();
    for (let k = 1; k <= 8; k++) h.window(k, stalled(k, () => false));
    let flagged = false;
    for (let k = 9; k <= 40; k++) {
      const out = h.window(k, stalled(k, () => true));
      expect(out.transitions, `window ${k}`).toEqual([]);
      const f = out.sharedFaults.find((s) => s.active);
      if (f) {
        flagged = true;
        expect(f).toMatchObject({ kind: 'storage', target: NFS, totalNodes: 12 });
        expect(f.degradedNodes).toHaveLength(12);
        expect(f.signals).toEqual(expect.arrayContaining(['nfs.rtt_ms', 'nfs.retrans_rate']));
      }
      if (k === 40) {
        const reasons = out.nodes.find((d) => d.node === 'n03')!.reasons;
        expect(reasons.filter((r) => r.signal.startsWith('nfs.')).every((r) => r.attributedTo === `storage:${NFS}` && r.contribution === 0)).toBe(true);
      }
    }
    expect(flagged).toBe(true);
    // Recovery of the target clears the flag after exitWindows.
    let cleared = false;
    for (let k = 41; k <= 45; k++) if (h.window(k, stalled(k, () => false)).sharedFaults.some((s) => !s.active && s.clearedMs !== undefined)) cleared = true;
    expect(cleared).toBe(true);
  });

  it('the same symptoms on one node alone are that node\'s fault', () => {
    const h = harness();
    for (let k = 1; k <= 8; k++) h.window(k, stalled(k, () => false));
    let out = h.window(9, stalled(9, (n) => n === 'n04'));
    for (let k = 10; k <= 40; k++) {
      out = h.window(k, stalled(k, (n) => n === 'n04'));
      expect(out.sharedFaults).toEqual([]);
    }
    expect(status(out, 'n04')).not.toBe('READY');
    expect(out.nodes.filter((d) => d.status !== 'READY').map((d) => d.node)).toEqual(['n04']);
  });

  it('a leaf switch whose links all throw errors is flagged as a fabric segment', () => {
    const h = harness();
    const leaf = (k: number, bad: boolean) => healthy(k, many, () => ({ ports: [port(bad ? { symbol: 3, retrans: 20 } : {})] }));
    for (let k = 1; k <= 8; k++) h.window(k, leaf(k, false));
    const out = h.window(9, leaf(9, true));
    expect(out.sharedFaults).toEqual([expect.objectContaining({ kind: 'fabric', target: 'leaf-a', active: true })]);
    for (let k = 10; k <= 30; k++) expect(h.window(k, leaf(k, true)).transitions).toEqual([]);
  });
});

describe('hangs and stragglers', () => {
  const J = nodeNames(4, 'j');
  const job = (k: number, extra: Partial<JobInfo> = {}): JobInfo => ({ id: 'train-1', nodes: J, startedMs: T0 - 3_600_000, lastLogMs: T0 + k * MIN - 5000, ...extra });

  it('a job whose nodes all idle with no log output for silentSec is a hang, reported once, with nobody to blame', () => {
    const h = harness();
    const findings = [];
    for (let k = 1; k <= 30; k++) {
      const stuck = k > 5;
      const out = h.window(k, { ...healthy(k, J, () => (stuck ? { gpu: () => ({ util: 0 }) } : {})), jobs: [job(k, stuck ? { lastLogMs: T0 + 5 * MIN } : {})] });
      findings.push(...out.findings);
    }
    expect(findings).toEqual([expect.objectContaining({ kind: 'hang', job: 'train-1' })]);
    expect(findings[0]!.node).toBeUndefined();
    expect(findings[0]!.detectedAtMs - T0).toBeGreaterThanOrEqual(15 * MIN);
  });

  it('names the one node that idles while the others spin in the collective', () => {
    const h = harness();
    const findings = [];
    for (let k = 1; k <= 20; k++) {
      const stuck = k > 5;
      const out = h.window(k, { ...healthy(k, J, (n) => (stuck ? { gpu: () => ({ util: n === 'j02' ? 0 : 100 }) } : {})), jobs: [job(k, stuck ? { lastLogMs: T0 + 5 * MIN } : {})] });
      findings.push(...out.findings.filter((f) => f.kind === 'hang'));
    }
    expect(findings).toEqual([expect.objectContaining({ kind: 'hang', node: 'j02' })]);
  });

  it('names the node the NCCL watchdogs of the others waited for', () => {
    const h = harness();
    const findings = [];
    for (let k = 1; k <= 20; k++) {
      const stuck = k > 5;
      const lines = k === 12 ? ['j00', 'j01', 'j03'].map((n) => ({ node: n, timeMs: T0 + k * MIN, line: 'Watchdog caught collective operation timeout' })) : [];
      const out = h.window(k, { ...healthy(k, J, () => (stuck ? { gpu: () => ({ util: 100 }) } : {})), jobs: [job(k, stuck ? { lastLogMs: T0 + 5 * MIN, ncclTimeouts: lines } : {})] });
      findings.push(...out.findings);
    }
    expect(findings).toEqual([expect.objectContaining({ kind: 'hang', node: 'j02' })]);
    expect(findings[0]!.evidence.join(' ')).toMatch(/NCCL/);
  });

  it('a node markedly slower than the rest of its job is a straggler, named once', () => {
    const h = harness();
    const six = nodeNames(6, 's');
    const findings = [];
    for (let k = 1; k <= 12; k++) {
      const out = h.window(k, { ...healthy(k, six, (n) => (n === 's04' && k > 4 ? { gpu: () => ({ sm: 1150 }) } : {})), jobs: [{ id: 'big', nodes: six, lastLogMs: T0 + k * MIN }] });
      findings.push(...out.findings);
    }
    expect(findings).toEqual([expect.objectContaining({ kind: 'straggler', job: 'big', node: 's04' })]);
  });
});

describe('repeat offenders', () => {
  it('N incidents within the window make a lemon; the flag drops when they age out', () => {
    const h = harness({ lemon: { incidents: 3, windowSec: 3600 } });
    let out = h.window(1, healthy(1));
    const fault = (k: number, n: number) => {
      h.window(k, { ...healthy(k), xids: [xid('n09', n, T0 + k * MIN - 1000)] });
      return h.window(k + 1, { ...healthy(k + 1), operator: [{ node: 'n09', action: 'release' }] });
    };
    fault(2, 79);
    fault(10, 48);
    out = fault(20, 95);
    expect(out.lemons).toEqual([expect.objectContaining({ node: 'n09', incidents: expect.any(Array) })]);
    expect(out.lemons[0]!.incidents).toHaveLength(3);
    expect(out.nodes.find((d) => d.node === 'n09')!.lemon).toBe(true);
    out = h.window(70, healthy(70));
    expect(out.lemons).toEqual([]);
  });
});

describe('state', () => {
  const input = (k: number): HealthWindowInput => ({
    nowMs: T0 + k * MIN,
    ...healthy(k, NODES, (n) => (n === 'n03' && k > 6 ? { gpu: (g) => ({ sbeRate: g === 1 ? 0.02 * k : 0 }) } : {})),
    ...(k === 9 ? { xids: [xid('n05', 79, T0 + k * MIN - 500)] } : {}),
  });

  it('serialises to JSON; a replica resuming from it decides exactly as the original would', () => {
    const config = resolveHealthConfig({ windowSec: 60, baseline: { bucketSec: 60, buckets: 30, minBuckets: 5, learnBelowZ: 3 } });
    const a = new HealthEvaluator(config);
    for (let k = 1; k <= 10; k++) a.evaluate(input(k));
    const b = HealthEvaluator.fromJSON(a.toJSON(), config);
    for (let k = 11; k <= 25; k++) expect(b.evaluate(input(k))).toEqual(a.evaluate(input(k)));
    expect(a.state.nodes['n03']!.status).not.toBe('READY');
  });

  it('evaluateHealth is pure: the state passed in is not modified', () => {
    const config = resolveHealthConfig({ windowSec: 60 });
    let state = emptyHealthState();
    for (let k = 1; k <= 5; k++) state = evaluateHealth(state, input(k), config).state;
    const before = serializeHealthState(state);
    const next = evaluateHealth(state, input(6), config);
    expect(serializeHealthState(state)).toBe(before);
    expect(next.state).not.toBe(state);
  });

  it('refuses a document of another version', () => {
    expect(() => parseHealthState('{"version":2,"nodes":{},"shared":{},"jobs":{}}')).toThrow(HealthStateError);
    expect(() => parseHealthState('nope')).toThrow(HealthStateError);
  });
});

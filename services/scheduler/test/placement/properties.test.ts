// Property-based tests over random clusters, running jobs and pending queues: whatever the
// input, a plan never double-books a GPU, places gangs whole, honours topology and static
// constraints, respects quotas, preempts only what it may, and never delays a reservation.
// The inputs include recovery: blamed nodes, hot-spare pools, recovery attempts with kept
// ranks (valid or not), and exclusion lists that differ from job to job.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClusterState,
  computeReservation,
  computeStaticFit,
  designateSpares,
  expectedEnd,
  mayUseSpares,
  planCycle,
  PRIORITY_CLASSES,
  resolveConfig,
  selectNodes,
  type CyclePlan,
  type JobRequest,
  type RankAssignment,
  type NodeView,
  type Release,
  type RunningJob,
  type SchedulingConfigInput,
  type TopologyNeed,
} from '../../src/placement/index.js';

const PRIORITIES = Object.values(PRIORITY_CLASSES);
const TENANTS = ['a', 'b', 'c'];
const HOUR = 3600_000;
const NOW = 10 * HOUR;

interface World {
  nodes: NodeView[];
  running: RunningJob[];
  pending: JobRequest[];
  config: SchedulingConfigInput;
}

const clusterArb = fc
  .record({
    spines: fc.integer({ min: 1, max: 2 }),
    leaves: fc.integer({ min: 1, max: 3 }),
    perLeaf: fc.integer({ min: 1, max: 4 }),
    nvl: fc.integer({ min: 1, max: 2 }),
    gpus: fc.constantFrom(4, 8),
  })
  .chain((shape) => {
    const count = shape.spines * shape.leaves * shape.perLeaf;
    return fc
      .array(
        fc.record({
          ready: fc.double({ min: 0, max: 1, noNaN: true }),
          model: fc.constantFrom('A', 'B'),
          ib: fc.boolean(),
          blamedHoursAgo: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined, freq: 4 }),
        }),
        { minLength: count, maxLength: count },
      )
      .map((attrs) =>
        attrs.map(
          (a, i): NodeView => ({
            name: `n${i}`,
            state: a.ready < 0.9 ? 'READY' : a.ready < 0.95 ? 'QUARANTINED' : 'DRAINING',
            gpuModel: a.model,
            gpuCount: shape.gpus,
            freeGpus: Array.from({ length: shape.gpus }, (_, g) => g),
            labels: a.ib ? { ib: 'ndr' } : {},
            topology: {
              nvlinkDomain: `nvl${Math.floor(i / shape.nvl)}`,
              leafSwitch: `leaf${Math.floor(i / shape.perLeaf)}`,
              spine: `spine${Math.floor(i / (shape.perLeaf * shape.leaves))}`,
              rack: `rack${i}`,
            },
            ...(a.blamedHoursAgo !== undefined ? { lastBlamedAt: NOW - a.blamedHoursAgo * HOUR } : {}),
          }),
        ),
      );
  });

/** Running jobs carved out of the nodes' GPUs (so the snapshot is consistent). */
function occupyArb(nodes: NodeView[], allowTerminating: boolean): fc.Arbitrary<{ nodes: NodeView[]; running: RunningJob[] }> {
  return fc
    .array(
      fc.record({
        node: fc.nat(nodes.length - 1),
        span: fc.integer({ min: 1, max: 2 }),
        gpus: fc.integer({ min: 1, max: 8 }),
        priority: fc.constantFrom(...PRIORITIES),
        tenant: fc.constantFrom(...TENANTS),
        startHoursAgo: fc.integer({ min: 0, max: 9 }),
        limitHours: fc.integer({ min: 0, max: 12 }),
        checkpoint: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined }),
        preemptedMinutesAgo: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
        terminating: fc.boolean(),
      }),
      { maxLength: 12 },
    )
    .map((specs) => {
      const copy = nodes.map((n) => ({ ...n, freeGpus: [...n.freeGpus] }));
      const running: RunningJob[] = [];
      specs.forEach((s, k) => {
        const ranks: RankAssignment[] = [];
        for (let r = 0; r < s.span; r++) {
          const n = copy[(s.node + r) % copy.length]!;
          const take = n.freeGpus.slice(0, Math.min(s.gpus, n.freeGpus.length));
          if (take.length === 0 || ranks.some((x) => x.node === n.name)) continue;
          n.freeGpus = n.freeGpus.filter((g) => !take.includes(g));
          ranks.push({ rank: ranks.length, node: n.name, gpus: take });
        }
        if (ranks.length === 0) return;
        const start = NOW - s.startHoursAgo * HOUR;
        running.push({
          id: `r${k}`,
          tenant: s.tenant,
          priority: s.priority,
          ranks,
          startTime: start,
          timeLimitSec: s.limitHours * 3600,
          ...(s.checkpoint !== undefined ? { lastCheckpointTime: Math.max(start, NOW - s.checkpoint * HOUR) } : {}),
          ...(s.preemptedMinutesAgo !== undefined ? { preemptedAt: NOW - s.preemptedMinutesAgo * 60_000 } : {}),
          ...(allowTerminating && s.terminating && k % 3 === 0 ? { terminating: true } : {}),
        });
      });
      return { nodes: copy, running };
    });
}

/**
 * Kept ranks as recovery sends them (distinct ranks of the job on distinct nodes, with the
 * GPUs they had), and now and then an invalid list (unknown node, rank out of range, repeats).
 */
const keepArb = (maxGpus: number, nodeCount: number, ranks: number) => {
  const gpus = fc.subarray(Array.from({ length: maxGpus }, (_, g) => g));
  const valid = fc
    .tuple(fc.subarray(Array.from({ length: ranks }, (_, r) => r), { minLength: 1 }), fc.shuffledSubarray(Array.from({ length: nodeCount }, (_, i) => `n${i}`), { minLength: ranks, maxLength: ranks }), fc.array(gpus, { minLength: ranks, maxLength: ranks }))
    .map(([kept, nodes, held]) => kept.map((rank) => ({ rank, node: nodes[rank]!, gpus: held[rank]! })));
  const invalid = fc.array(
    fc.record({ rank: fc.integer({ min: 0, max: 4 }), node: fc.integer({ min: 0, max: nodeCount }).map((i) => (i === nodeCount ? 'gone' : `n${i}`)), gpus }),
    { maxLength: 4 },
  );
  return fc.option(fc.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: invalid, weight: 1 }), { nil: undefined });
};

const jobArb = (maxGpus: number, nodeCount = 3) =>
  fc.record({
    id: fc.uuid(),
    tenant: fc.constantFrom(...TENANTS),
    nodes: fc.integer({ min: 1, max: 4 }),
    gpusPerNode: fc.integer({ min: 1, max: maxGpus }),
    gpuTypes: fc.subarray(['A', 'B']),
    priority: fc.constantFrom(...PRIORITIES),
    submitTime: fc.integer({ min: 0, max: NOW }),
    timeLimitSec: fc.constantFrom(0, 1800, 3600, 4 * 3600, 20 * 3600),
    topology: fc.constantFrom<TopologyNeed>('any', 'any', 'same-nvlink-domain', 'same-switch', 'same-spine'),
    nodeSelector: fc.constantFrom<Record<string, string>>({}, {}, {}, { ib: 'ndr' }),
    excludeNodes: fc.subarray(['n0', 'n1', 'n2', 'n3', 'n4', 'gone'].slice(0, Math.max(3, nodeCount))),
    recovery: fc.boolean(),
  }).chain((j) => (nodeCount >= j.nodes ? keepArb(maxGpus, nodeCount, j.nodes).map((keep) => (keep ? { ...j, keep } : j)) : fc.constant(j)));

const recoveryArb = fc.record({
  spares: fc.record({
    pools: fc.array(
      fc.record({
        count: fc.integer({ min: 0, max: 2 }),
        perLeafSwitch: fc.boolean(),
        gpuType: fc.option(fc.constantFrom('A', 'B'), { nil: undefined }),
      }),
      { maxLength: 2 },
    ),
    allowPreemptible: fc.boolean(),
  }),
  recovery: fc.record({ blamePenaltySec: fc.constantFrom(0, 3600, 4 * 3600) }),
});

const configArb: fc.Arbitrary<SchedulingConfigInput> = fc.tuple(recoveryArb, fc.oneof(
  fc.constant({}),
  fc
    .record({
      nominal: fc.array(fc.integer({ min: 0, max: 48 }), { minLength: 3, maxLength: 3 }),
      cohort: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      limit: fc.array(fc.option(fc.integer({ min: 0, max: 16 }), { nil: undefined }), { minLength: 3, maxLength: 3 }),
      reclaim: fc.constantFrom('any' as const, 'lower-priority' as const, 'never' as const),
      window: fc.constantFrom(0, 1800),
    })
    .map((c) => ({
      tenants: Object.fromEntries(
        TENANTS.map((t, k) => [
          t,
          {
            weight: k + 1,
            nominalGpus: c.nominal[k]!,
            ...(c.cohort[k] ? { cohort: 'shared' } : {}),
            ...(c.limit[k] !== undefined ? { borrowingLimitGpus: c.limit[k] } : {}),
          },
        ]),
      ),
      preemption: { reclaimWithinCohort: c.reclaim, windowSec: c.window },
    })),
)).map(([recovery, rest]): SchedulingConfigInput => ({ ...rest, ...recovery }));

function worldArb(opts: { terminating: boolean; config?: fc.Arbitrary<SchedulingConfigInput> }): fc.Arbitrary<World> {
  return clusterArb.chain((nodes) =>
    fc
      .record({
        occupied: occupyArb(nodes, opts.terminating),
        pending: fc.uniqueArray(jobArb(nodes[0]!.gpuCount, nodes.length), { maxLength: 10, selector: (j) => j.id }),
        config: opts.config ?? configArb,
      })
      .map(({ occupied, pending, config }) => ({ nodes: occupied.nodes, running: occupied.running, pending, config })),
  );
}

const gpusOf = (j: { ranks: { gpus: number[] }[] }) => j.ranks.reduce((n, r) => n + r.gpus.length, 0);

function checkPlacements(w: World, plan: CyclePlan): void {
  const byName = new Map(w.nodes.map((n) => [n.name, n]));
  const jobs = new Map(w.pending.map((j) => [j.id, j]));
  const used = new Set<string>();
  for (const p of plan.placements) {
    const job = jobs.get(p.jobId)!;
    expect(job).toBeDefined();
    // All or nothing: exactly the requested nodes, each once, each with the requested GPUs.
    expect(p.ranks.length).toBe(job.nodes);
    expect(new Set(p.ranks.map((r) => r.node)).size).toBe(job.nodes);
    for (const r of p.ranks) {
      const node = byName.get(r.node)!;
      expect(r.gpus.length).toBe(job.gpusPerNode);
      expect(node.state).toBe('READY');
      if (job.gpuTypes.length > 0) expect(job.gpuTypes).toContain(node.gpuModel);
      expect(job.excludeNodes).not.toContain(node.name);
      for (const [k, v] of Object.entries(job.nodeSelector)) expect(node.labels[k]).toBe(v);
      for (const g of r.gpus) {
        // Free in the snapshot, and not given to two jobs.
        expect(node.freeGpus).toContain(g);
        const key = `${r.node}/${g}`;
        expect(used.has(key)).toBe(false);
        used.add(key);
      }
    }
    const nodes = p.ranks.map((r) => byName.get(r.node)!.topology);
    const same = (k: 'nvlinkDomain' | 'leafSwitch' | 'spine') => new Set(nodes.map((t) => t[k])).size === 1;
    if (job.topology === 'same-nvlink-domain') expect(same('nvlinkDomain')).toBe(true);
    if (job.topology === 'same-switch') expect(same('leafSwitch')).toBe(true);
    if (job.topology === 'same-spine') expect(same('spine')).toBe(true);
  }
  // Every pending job is either placed or explained, exactly once.
  const seen = [...plan.placements.map((p) => p.jobId), ...plan.unschedulable.map((u) => u.jobId)];
  expect(seen.sort()).toEqual(w.pending.map((j) => j.id).sort());
}

/** Hot spares stay with the jobs that may use them; kept ranks stay put when the plan says so. */
function checkRecovery(w: World, plan: CyclePlan): void {
  const config = resolveConfig(w.config);
  const state = new ClusterState(w.nodes);
  const spares = new Set([...designateSpares({ state, spares: config.spares, running: w.running, pending: w.pending, now: NOW, blamePenaltySec: config.recovery.blamePenaltySec })].map((i) => w.nodes[i]!.name));
  const jobs = new Map(w.pending.map((j) => [j.id, j]));
  for (const p of plan.placements) {
    const job = jobs.get(p.jobId)!;
    const onSpares = p.ranks.map((r) => r.node).filter((n) => spares.has(n));
    if (!mayUseSpares(job, config)) expect(onSpares).toEqual([]);
    expect(p.spares ?? []).toEqual(onSpares);
    expect(p.ranks.map((r) => r.rank)).toEqual(p.ranks.map((_, k) => k));
    if (job.keep?.length) {
      expect(p.kept).toBeTypeOf('boolean');
      if (p.kept) for (const k of job.keep) expect(p.ranks[k.rank]!.node).toBe(k.node);
    } else expect(p.kept).toBeUndefined();
  }
  for (const n of plan.nominations) {
    if (!mayUseSpares(jobs.get(n.jobId)!, config)) expect(n.nodes.filter((x) => spares.has(x))).toEqual([]);
  }
}

describe('planCycle properties', () => {
  it('never double-books, places gangs whole, honours topology and constraints', () => {
    fc.assert(
      fc.property(worldArb({ terminating: true }), (w) => {
        const plan = planCycle(w.nodes, w.pending, { running: w.running, now: NOW, config: w.config });
        checkPlacements(w, plan);
        checkRecovery(w, plan);
        // Nominated jobs hold nodes too: no two nominations and placements share a GPU-less node beyond capacity.
        for (const n of plan.nominations) expect(new Set(n.nodes).size).toBe(w.pending.find((j) => j.id === n.jobId)!.nodes);
      }),
      { numRuns: 300 },
    );
  });

  it('preempts only lower priority (or lent quota), never a terminating job or one inside the window', () => {
    fc.assert(
      fc.property(worldArb({ terminating: true }), (w) => {
        const plan = planCycle(w.nodes, w.pending, { running: w.running, now: NOW, config: w.config });
        const running = new Map(w.running.map((r) => [r.id, r]));
        const pending = new Map(w.pending.map((j) => [j.id, j]));
        const window = (w.config.preemption?.windowSec ?? 1800) * 1000;
        expect(new Set(plan.preemptions.map((p) => p.jobId)).size).toBe(plan.preemptions.length);
        for (const p of plan.preemptions) {
          const victim = running.get(p.jobId)!;
          const preemptor = pending.get(p.preemptorId)!;
          expect(victim.terminating).not.toBe(true);
          if (victim.preemptedAt !== undefined) expect(NOW - victim.preemptedAt).toBeGreaterThanOrEqual(window);
          if (victim.priority >= preemptor.priority) {
            // Only reclaiming lent quota may touch equal or higher priority, and only across tenants in one cohort.
            expect(p.reason).toMatch(/^reclaiming quota lent to tenant /);
            expect(victim.tenant).not.toBe(preemptor.tenant);
            expect(w.config.tenants?.[victim.tenant]?.cohort).toBe('shared');
            expect(w.config.tenants?.[preemptor.tenant]?.cohort).toBe('shared');
            expect(w.config.preemption?.reclaimWithinCohort).toBe('any');
          }
        }
        // A preemptor is never also placed in the same cycle.
        const placed = new Set(plan.placements.map((p) => p.jobId));
        for (const p of plan.preemptions) expect(placed.has(p.preemptorId)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('respects quotas: a tenant that gets GPUs stays within nominal plus what it may borrow', () => {
    fc.assert(
      fc.property(worldArb({ terminating: true }), (w) => {
        const plan = planCycle(w.nodes, w.pending, { running: w.running, now: NOW, config: w.config });
        const tenants = w.config.tenants;
        if (!tenants) return;
        const preempted = new Set(plan.preemptions.map((p) => p.jobId));
        const job = new Map(w.pending.map((j) => [j.id, j]));
        for (const t of TENANTS) {
          const cfg = tenants[t]!;
          const gained =
            plan.placements.filter((p) => job.get(p.jobId)!.tenant === t).reduce((n, p) => n + gpusOf(p), 0) +
            plan.nominations.filter((n) => job.get(n.jobId)!.tenant === t).reduce((n, x) => n + job.get(x.jobId)!.nodes * job.get(x.jobId)!.gpusPerNode, 0);
          if (gained === 0) continue;
          const kept = w.running.filter((r) => r.tenant === t && !r.terminating && !preempted.has(r.id)).reduce((n, r) => n + gpusOf(r), 0);
          const ceiling = cfg.cohort === undefined ? cfg.nominalGpus! : cfg.nominalGpus! + (cfg.borrowingLimitGpus ?? Infinity);
          expect(kept + gained).toBeLessThanOrEqual(ceiling);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never delays the reservation: after the cycle the head job can still start by its reserved time', () => {
    fc.assert(
      fc.property(worldArb({ terminating: false, config: fc.constant({ preemption: { enabled: false } }) }), (w) => {
        const plan = planCycle(w.nodes, w.pending, { running: w.running, now: NOW, config: w.config });
        const reservation = plan.reservations[0];
        if (!reservation) return;
        const head = w.pending.find((j) => j.id === reservation.jobId)!;
        // The cluster after the plan: placed GPUs are taken and come free at now + limit.
        const after = w.nodes.map((n) => ({ ...n, freeGpus: [...n.freeGpus] }));
        const byName = new Map(after.map((n) => [n.name, n]));
        const state0 = new ClusterState(after);
        const releases: Release[] = [];
        for (const r of w.running) {
          for (const rank of r.ranks) releases.push({ node: state0.byName.get(rank.node)!, gpus: rank.gpus.length, end: expectedEnd(r.startTime, r.timeLimitSec, NOW) });
        }
        for (const p of plan.placements) {
          const job = w.pending.find((j) => j.id === p.jobId)!;
          for (const rank of p.ranks) {
            const n = byName.get(rank.node)!;
            n.freeGpus = n.freeGpus.filter((g) => !rank.gpus.includes(g));
            releases.push({ node: state0.byName.get(rank.node)!, gpus: rank.gpus.length, end: expectedEnd(NOW, job.timeLimitSec, NOW) });
          }
        }
        const state = new ClusterState(after);
        const again = computeReservation(state, head, computeStaticFit(state, head), releases, NOW);
        expect(again.ok).toBe(true);
        if (again.ok) expect(again.guard.startTime).toBeLessThanOrEqual(reservation.startTime);
      }),
      { numRuns: 400 },
    );
  });

  it('the single-node fast path chooses the same node as the general gang path', () => {
    fc.assert(
      fc.property(
        worldArb({ terminating: false, config: fc.constant({}) }),
        jobArb(4).map((j) => ({ ...j, nodes: 1 })),
        (w, job) => {
          const state = new ClusterState(w.nodes);
          if (state.maxNvlSize > 1) return;
          const fit = computeStaticFit(state, job);
          const fast = selectNodes(state, job, fit, { free: state.freeCount });
          const general = selectNodes(state, job, fit, { free: state.freeCountsCopy() });
          expect(fast.ok).toBe(general.ok);
          if (fast.ok && general.ok) expect(fast.nodes).toEqual(general.nodes);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejection counts cover each node at most once', () => {
    fc.assert(
      fc.property(worldArb({ terminating: true }), (w) => {
        const plan = planCycle(w.nodes, w.pending, { running: w.running, now: NOW, config: w.config });
        for (const u of plan.unschedulable) {
          const total = Object.values(u.rejections).reduce((a, b) => a + b, 0);
          expect(total).toBeLessThanOrEqual(w.nodes.length);
          expect(u.queuePosition).toBeGreaterThanOrEqual(1);
        }
        // Queue positions of the jobs left pending are 1..k in order.
        expect(plan.unschedulable.map((u) => u.queuePosition)).toEqual(plan.unschedulable.map((_, k) => k + 1));
      }),
      { numRuns: 200 },
    );
  });
});

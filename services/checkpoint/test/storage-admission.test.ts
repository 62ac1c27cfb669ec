// The admission policy (AIMD, telemetry aggregation), the target configuration, and the
// controller end to end on a real Redis with a stubbed cluster view.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { TelemetryBatch, type NfsMountTelemetry } from '@gantry/proto';
import { ConfigError } from '@gantry/service-kit';
import { useRedis } from '../../../libs/store/test/redis-fixture.js';
import { DEFAULT_AIMD, aggregateTelemetry, aimdStateOf, aimdStep, mountBelongs, poolView, readyWaiters, startSize, type AimdState, type StorageSignals } from '../src/storage-admission.js';
import { loadStorageConfig, parseStorageTargets } from '../src/storage-config.js';
import { JobState } from '@gantry/proto';
import { Registry } from 'prom-client';
import { LeaseWakeup, StorageAdmission, attemptOver, faultMatches, registerStorageMetrics, storageCalls, type ClusterView } from '../src/storage-service.js';
import { StorageLeaseMode } from '@gantry/proto';

const bounds = { initial: 10, min: 1, max: 100, perNode: 1 };
const quiet: StorageSignals = { nodes: 4, activeNodes: 2, backlog: 0, rttMs: 2, slotUtilization: 0.3, bytesPerSecond: 10e9 };

function mount(mountpoint: string, write: { ops: number; rtt: number }, backlog: number, util: number, bytes: number): NfsMountTelemetry {
  return {
    device: 'nfs1:/export', mountpoint, fstype: 'nfs4', statvers: '1.1', ops: [], transport: undefined,
    rates: {
      writeBytesPerSecond: bytes, backlogQueueLength: backlog, slotTableUtilization: util,
      ops: [{ op: 'WRITE', opsPerSecond: write.ops, avgRttMs: write.rtt }],
    },
  } as NfsMountTelemetry;
}
const batch = (node: string, mounts: NfsMountTelemetry[]) => TelemetryBatch.fromPartial({ node, time: new Date(), nfsMounts: mounts });

describe('aimdStep', () => {
  const pool = (limit: number, leases: number, waiters: number, ready = waiters) => ({ limit, leases, waiters, ready });

  it('increases only while the limit, not the per-node cap, holds holders back: one lease per such waiter, at least `increase`, at most doubling', () => {
    expect(aimdStep(pool(10, 10, 5), bounds, 100e9, quiet, false, { hold: 0, idle: 0 })).toMatchObject({ limit: 15, reason: 'increase: 5 waiting on nodes under their cap, 10 of 100 GB/s' });
    expect(aimdStep(pool(10, 10, 30), bounds, 100e9, quiet, false, { hold: 0, idle: 0 }).limit).toBe(20);
    expect(aimdStep(pool(10, 10, 5, 1), bounds, 100e9, quiet, false, { hold: 0, idle: 0 }).limit).toBe(12);
    // Every waiter is on a node that holds its share: a larger pool would admit none of them.
    expect(aimdStep(pool(10, 10, 9, 0), bounds, 100e9, quiet, false, { hold: 0, idle: 0 })).toMatchObject({ limit: 10, reason: 'hold: pool not the bottleneck' });
    expect(aimdStep(pool(10, 4, 0), bounds, 100e9, quiet, false, { hold: 0, idle: 0 }).limit).toBe(10);
    expect(aimdStep(pool(100, 100, 3), bounds, 100e9, quiet, false, { hold: 0, idle: 0 }).limit).toBe(100);
  });

  it('grows at full delivery with a deep server queue: waiting nodes would otherwise finish their shards alone at the end', () => {
    const standing = { ...quiet, rttMs: 35, backlog: 900, slotUtilization: 1, bytesPerSecond: 95e9 };
    expect(aimdStep(pool(40, 40, 20), bounds, 100e9, standing, false, { hold: 0, idle: 0 })).toMatchObject({ limit: 60, reason: 'increase: 20 waiting on nodes under their cap, 95 of 100 GB/s' });
    expect(aimdStep(pool(40, 40, 0), bounds, 100e9, standing, false, { hold: 0, idle: 0 })).toMatchObject({ limit: 40, reason: 'hold: pool not the bottleneck' });
  });

  it('decreases multiplicatively when the server queues without delivering (RTT high, bytes below the headroom), then holds one step; a backlog or full slots with a low RTT do not', () => {
    for (const s of [{ backlog: 100 }, { slotUtilization: 0.99 }]) {
      expect(aimdStep(pool(40, 40, 9), bounds, 100e9, { ...quiet, ...s }, false, { hold: 0, idle: 0 }).reason).toMatch(/^increase: /);
    }
    expect(aimdStep(pool(40, 40, 9), bounds, 100e9, { ...quiet, rttMs: 80, backlog: 100 }, false, { hold: 0, idle: 0 }).reason).toBe('decrease: rtt 80 ms > 20 at 10 of 100 GB/s, backlog 100 > 32');
    for (const s of [{ rttMs: 80 }, { rttMs: 80, backlog: 100, slotUtilization: 0.99 }, { rttMs: 80, bytesPerSecond: 89e9 }]) {
      const d = aimdStep(pool(40, 40, 9), bounds, 100e9, { ...quiet, ...s }, false, { hold: 0, idle: 0 });
      expect(d.limit).toBe(28);
      expect(d.reason).toMatch(/^decrease: /);
      const held = aimdStep(pool(28, 28, 9), bounds, 100e9, { ...quiet, ...s }, false, d.state);
      expect(held).toMatchObject({ limit: 28, reason: expect.stringMatching(/^hold: after decrease \(rtt 80 ms > 20 at /) });
    }
    // The same RTT while the target moves 90 % of its capacity or more is a standing queue: no decrease.
    expect(aimdStep(pool(40, 40, 0), bounds, 100e9, { ...quiet, rttMs: 80, bytesPerSecond: 90e9 }, false, { hold: 0, idle: 0 }).limit).toBe(40);
    // Without RTT figures (no ops of the mode) there is no congestion to see.
    expect(aimdStep(pool(40, 40, 0), bounds, 100e9, { ...quiet, rttMs: undefined, backlog: 5000 }, false, { hold: 0, idle: 0 }).limit).toBe(40);
  });

  it('treats saturated transports at a fraction of what the server and the nodes\' links allow as congestion, even with the RTT under its mark', () => {
    // The 504-GPU report's collapse with 64 KiB WRITEs: every slot table full, a backlog, 16 % of
    // the write bandwidth, and an RTT (13 ms) under the 20 ms mark. The old rule, RTT only, let the pool grow.
    const collapse: StorageSignals = { nodes: 63, activeNodes: 63, backlog: 400, rttMs: 13, slotUtilization: 1, bytesPerSecond: 40e9, sendingBytesPerSecond: 40e9 };
    const link = { bytesPerSecond: 250e9, clientBytesPerSecond: 25e9 };
    const d = aimdStep(pool(60, 60, 20), bounds, link, collapse, false, { hold: 0, idle: 0 });
    expect(d).toMatchObject({ limit: 42, reason: 'decrease: 40 GB/s (40 while sending) < 50% of 250 GB/s that 63 nodes and the server allow, backlog 400 > 32, slots 100% > 95%', state: { hold: 1 } });
    expect(aimdStep(pool(60, 60, 20), bounds, 250e9, collapse, false, { hold: 0, idle: 0 }).reason).toMatch(/^increase: /); // no link speed configured: the rule is off
    // Either half missing is not saturation: slots with room, or no backlog.
    for (const s of [{ slotUtilization: 0.9 }, { backlog: 10 }]) expect(aimdStep(pool(60, 60, 20), bounds, link, { ...collapse, ...s }, false, { hold: 0, idle: 0 }).reason).toMatch(/^increase: /);
    // Two nodes each at its own 25 GB/s link (full slots, deep backlog, 18 % of the server): the
    // pool is what holds the others back, so it grows.
    const atLink: StorageSignals = { nodes: 60, activeNodes: 2, backlog: 800, rttMs: 5.9, slotUtilization: 1, bytesPerSecond: 45e9, sendingBytesPerSecond: 45e9 };
    expect(aimdStep(pool(2, 2, 20), bounds, link, atLink, false, { hold: 0, idle: 0 })).toMatchObject({ limit: 4, reason: expect.stringMatching(/^increase: /) });
    // A save that began late in the interval: little over the interval, plenty while sending.
    const late: StorageSignals = { ...collapse, bytesPerSecond: 40e9, sendingBytesPerSecond: 280e9 };
    expect(aimdStep(pool(32, 32, 28), bounds, link, late, false, { hold: 0, idle: 0 }).reason).toMatch(/^increase: /);
  });

  it('decays an idle pool toward its initial size after `idleSteps` idle steps, halving the distance per step (RFC 2861), from above and from below', () => {
    const idle: StorageSignals = { nodes: 4, activeNodes: 0, backlog: 0, rttMs: undefined, slotUtilization: 0, bytesPerSecond: 0 };
    const run = (from: number, steps: number) => {
      let limit = from;
      let state: AimdState = { hold: 0, idle: 0 };
      const out: number[] = [];
      const reasons: string[] = [];
      for (let i = 0; i < steps; i++) {
        const d = aimdStep(pool(limit, 0, 0), bounds, 100e9, idle, false, state);
        ({ limit, state } = d);
        out.push(limit);
        reasons.push(d.reason);
      }
      return { out, reasons };
    };
    // The old rule held a stale 60 forever ('hold: pool not the bottleneck'): the next save let every node flush at once.
    const down = run(60, 9);
    expect(down.out).toEqual([60, 60, 35, 22, 16, 13, 11, 10, 10]);
    expect(down.reasons.slice(0, 3)).toEqual(['hold: idle 1 of 3 steps before the limit decays toward the initial 10', 'hold: idle 2 of 3 steps before the limit decays toward the initial 10', 'decay: idle 3 steps, toward the initial 10']);
    expect(down.reasons.at(-1)).toBe('hold: idle at the initial size');
    // A limit a congested save cut to 2 says as little about the next save.
    expect(run(2, 7).out).toEqual([2, 2, 6, 8, 9, 10, 10]);
    expect(aimdStep(pool(60, 0, 0), { ...bounds, initial: 200 }, 100e9, idle, false, { hold: 0, idle: 5 }).limit).toBe(80); // within [min, max]
  });

  it('starts a pool that covers the nodes (reads) at one share per node that reports a mount: an idle read pool decays up to it', () => {
    const idle: StorageSignals = { nodes: 60, activeNodes: 0, backlog: 0, rttMs: undefined, slotUtilization: 0, bytesPerSecond: 0 };
    const read = { initial: 48, min: 16, max: 480, perNode: 1, initialCoversNodes: true };
    expect(startSize(read, idle)).toEqual({ size: 60, why: ' (1 per node x 60 nodes)' });
    expect(startSize({ ...read, perNode: 2 }, idle).size).toBe(120);
    expect(startSize({ ...read, max: 50 }, idle).size).toBe(50);
    expect(startSize(read, { nodes: 10 }).size).toBe(48); // never below the configured initial
    expect(startSize({ ...read, initialCoversNodes: false }, idle).size).toBe(48); // writes
    expect(startSize({ ...read, perNode: 0 }, idle).size).toBe(48); // no per-node cap: no per-node share
    // The old rule held 48: 12 of 60 restarting nodes waited for the controller's first step.
    const limits: number[] = [];
    let limit = 48;
    let state: AimdState = { hold: 0, idle: 0 };
    for (let i = 0; i < 7; i++) {
      const d = aimdStep(pool(limit, 0, 0), read, 700e9, idle, false, state);
      ({ limit, state } = d);
      limits.push(limit);
      if (i === 2) expect(d.reason).toBe('decay: idle 3 steps, toward the initial 60 (1 per node x 60 nodes)');
    }
    expect(limits).toEqual([48, 48, 54, 57, 59, 60, 60]);
  });

  it('does not count a step as idle while leases are held, holders wait, bytes of the mode move, or without telemetry; activity restarts the count', () => {
    const idle: StorageSignals = { nodes: 4, activeNodes: 0, backlog: 0, rttMs: undefined, slotUtilization: 0, bytesPerSecond: 0 };
    const late = { hold: 0, idle: 7 };
    expect(aimdStep(pool(60, 0, 0), bounds, 100e9, idle, false, late).limit).toBe(35);
    for (const [p, s] of [[pool(60, 1, 0), idle], [pool(60, 0, 1, 0), idle], [pool(60, 0, 0), { ...idle, activeNodes: 1, bytesPerSecond: 1e6 }], [pool(60, 0, 0), undefined]] as const) {
      const d = aimdStep(p, bounds, 100e9, s, false, late);
      expect(d.limit).toBe(60);
      expect(d.state.idle).toBe(0);
    }
    // Health wins over idleness: a degraded target stays at its degraded cap.
    expect(aimdStep(pool(60, 0, 0), bounds, 100e9, idle, true, late)).toMatchObject({ limit: 25, state: { idle: 0 } });
  });

  it('reads stored counters leniently: missing or bad ones start from zero', () => {
    expect(aimdStateOf(undefined)).toEqual({ hold: 0, idle: 0 });
    expect(aimdStateOf({ hold: 1, idle: 2.7 })).toEqual({ hold: 1, idle: 2 });
    expect(aimdStateOf({ hold: -3, idle: Number.NaN })).toEqual({ hold: 0, idle: 0 });
  });

  it('shrinks to the degraded cap while health flags the target, and stays within bounds', () => {
    const d = aimdStep(pool(100, 0, 0), bounds, 100e9, quiet, true, { hold: 0, idle: 0 });
    expect(d.limit).toBe(25);
    expect(d.reason).toMatch(/degraded/);
    expect(aimdStep(pool(1, 1, 0), bounds, 100e9, { ...quiet, rttMs: 999 }, false, { hold: 0, idle: 0 }).limit).toBe(1);
    expect(aimdStep(pool(100, 100, 3), bounds, 100e9, quiet, false, { hold: 0, idle: 0 }).limit).toBe(100);
  });
});

describe('readyWaiters', () => {
  it('counts the waiters the per-node cap lets through, in queue order, counting the ones ahead; a holder without a node is never capped', () => {
    const leases = ['a', 'b', undefined];
    const waiters = ['a', 'c', 'c', undefined, 'b', 'd', 'a'];
    expect(readyWaiters(leases, waiters, 1)).toBe(3); // c, the one without a node, d
    expect(readyWaiters(leases, waiters, 2)).toBe(6); // all but the last a, which would be a's third
    expect(readyWaiters(leases, waiters, 0)).toBe(7);
    expect(readyWaiters([], [], 1)).toBe(0);
  });
});

describe('aggregateTelemetry', () => {
  it('keeps the target mounts, weights RTT by ops, averages backlog over writing nodes', () => {
    const s = aggregateTelemetry([
      batch('a', [mount('/mnt/ckpt', { ops: 100, rtt: 10 }, 40, 1, 5e9), mount('/home', { ops: 1000, rtt: 900 }, 999, 1, 1e9)]),
      batch('b', [mount('/mnt/ckpt', { ops: 300, rtt: 2 }, 0, 0.5, 15e9)]),
      batch('c', [mount('/mnt/ckpt', { ops: 0, rtt: 0 }, 0, 0, 0)]),
      batch('d', []),
    ], '/mnt/ckpt', 'write', 128);
    // While sending (Little's law), per node: 128 x 1.0 in flight x 50 MB per WRITE / 10 ms, and 128 x 0.5 x 50 MB / 2 ms.
    expect(s).toEqual({ nodes: 3, activeNodes: 2, backlog: 20, rttMs: 4, slotUtilization: 0.75, bytesPerSecond: 20e9, sendingBytesPerSecond: 640e9 + 1600e9 });
    expect(mountBelongs('/mnt/ckpt', '/mnt/ckpt/')).toBe(true);
    expect(mountBelongs('/mnt/ckpt2', '/mnt/ckpt')).toBe(false);
    expect(mountBelongs('/mnt', '/mnt/ckpt')).toBe(true); // the target lives inside that mount
  });
});

describe('storage configuration', () => {
  const ok = [{ name: 'ckpt', mountPrefix: '/mnt/ckpt', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9 }];
  it('fills defaults: 128 RPC slots, 30 s TTL, server export from the name', () => {
    const [t] = parseStorageTargets(JSON.stringify(ok));
    expect(t).toMatchObject({ rpcSlots: 128, leaseTtlMs: 30_000, serverExport: 'ckpt', write: { initial: 32, min: 1, perNode: 1 }, read: { initial: 64, perNode: 1 }, aimd: DEFAULT_AIMD });
    const [u] = parseStorageTargets(JSON.stringify([{ ...ok[0], write: { initial: 4, max: 8 } }]));
    expect(u!.write).toEqual({ initial: 4, min: 1, max: 8, perNode: 1, initialCoversNodes: false });
    expect(u!.read.initialCoversNodes).toBe(true);
    expect(loadStorageConfig({}).targets).toEqual([]);
    expect(t!.clientBytesPerSecond).toBeUndefined();
    expect(parseStorageTargets(JSON.stringify([{ ...ok[0], clientBytesPerSecond: 25e9 }]))[0]!.clientBytesPerSecond).toBe(25e9);
  });
  it('names the variable, the target and the field of a bad value', () => {
    const bad = [{ ...ok[0], name: 'fast', writeBytesPerSecond: -1, write: { initial: 5, min: 6, max: 10 } }];
    expect(() => parseStorageTargets(JSON.stringify(bad))).toThrow(ConfigError);
    expect(() => parseStorageTargets(JSON.stringify(bad))).toThrow(/STORAGE_TARGETS: target "fast" writeBytesPerSecond: .*; target "fast" write: needs min <= initial <= max/);
    expect(() => parseStorageTargets('[{"name":"A"}')).toThrow(/STORAGE_TARGETS: not JSON/);
    expect(() => parseStorageTargets(JSON.stringify([...ok, ...ok]))).toThrow(/listed twice/);
    expect(() => loadStorageConfig({ STORAGE_CONTROL_MS: '5' })).toThrow(/STORAGE_CONTROL_MS/);
    expect(() => parseStorageTargets(JSON.stringify([{ ...ok[0], read: { perNode: -1 } }]))).toThrow(/target "ckpt" read.perNode: /);
    expect(() => parseStorageTargets(JSON.stringify([{ ...ok[0], clientBytesPerSecond: 0 }]))).toThrow(/target "ckpt" clientBytesPerSecond: /);
    expect(() => parseStorageTargets(JSON.stringify([{ ...ok[0], aimd: { idleSteps: 0 } }]))).toThrow(/target "ckpt" aimd.idleSteps: /);
  });
  it('matches a health storage fault (server:export) to its target', () => {
    const [t] = parseStorageTargets(JSON.stringify([{ ...ok[0], serverExport: 'nfs1:/export/ckpt' }]));
    expect(faultMatches('nfs1:/export/ckpt', t!)).toBe(true);
    expect(faultMatches('nfs2:/export/ckpt', t!)).toBe(false);
  });
});

describe('StorageAdmission controller', () => {
  const redisOf = useRedis();

  it('grows a saturated pool, shrinks it when the server queues (RTT, with the backlog) and on a storage fault', async () => {
    const [t] = parseStorageTargets(JSON.stringify([{ name: `c${process.pid}`, mountPrefix: '/mnt/ckpt', serverExport: 'nfs1:/export/ckpt', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, write: { initial: 2, min: 1, max: 40 } }]));
    let batches: TelemetryBatch[] = [batch('a', [mount('/mnt/ckpt', { ops: 100, rtt: 2 }, 0, 0.2, 1e9)])];
    let faults: string[] = [];
    const view: ClusterView = { telemetry: async () => batches, storageFaults: async () => faults, job: async () => undefined, close: () => undefined };
    const adm = new StorageAdmission(redisOf(), { targets: [t!], controlIntervalMs: 1000, schedulerAddr: 'stub', httpPort: undefined, httpHost: '127.0.0.1' }, view, pino({ level: 'silent' }));
    const limit = async () => (await adm.store.state(t!.name, 'write')).limit;
    for (let r = 0; r < 3; r++) await adm.store.acquire(t!.name, 'write', { jobId: 'j', attempt: 1, rank: r }, 60_000, 2);
    await adm.step();
    expect(await limit()).toBe(4);
    batches = [batch('a', [mount('/mnt/ckpt', { ops: 100, rtt: 50 }, 500, 1, 1e9)])];
    await adm.step();
    expect(await limit()).toBe(3);
    expect(adm.targets.get(t!.name)!.pools.write.reason).toBe('decrease: rtt 50 ms > 20 at 1 of 250 GB/s, backlog 500 > 32, slots 100% > 95%');
    faults = ['nfs1:/export/ckpt'];
    await adm.step();
    const shown = await adm.show(adm.target(t!.name));
    expect(shown.degraded).toBe(true);
    expect(shown.writePool).toMatchObject({ limit: 2, leases: 2, waiters: 1 }); // the third asked once, before the pool grew
    expect(shown.telemetry).toMatchObject({ nodes: 1, backlogQueueLength: 500 });
  });

  it('keeps the AIMD counters in Redis with the limit: a restarted service continues an idle decay and shows the stored reason until its first step', async () => {
    const [t] = parseStorageTargets(JSON.stringify([{ name: `i${process.pid}`, mountPrefix: '/mnt/i', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, write: { initial: 10, min: 1, max: 100 } }]));
    const quietMount = batch('a', [{ ...mount('/mnt/i', { ops: 0, rtt: 0 }, 0, 0, 0), rates: { ops: [] } } as unknown as NfsMountTelemetry]);
    const view: ClusterView = { telemetry: async () => [quietMount], storageFaults: async () => [], job: async () => undefined, close: () => undefined };
    const config = { targets: [t!], controlIntervalMs: 1000, schedulerAddr: 'stub', httpPort: undefined, httpHost: '127.0.0.1' };
    const first = new StorageAdmission(redisOf(), config, view, pino({ level: 'silent' }));
    await first.store.setLimit(t!.name, 'write', 60);
    await first.step();
    await first.step();
    expect(await first.store.state(t!.name, 'write')).toMatchObject({ limit: 60, controller: { state: { hold: 0, idle: 2 }, reason: 'hold: idle 2 of 3 steps before the limit decays toward the initial 10' } });
    first.stop();
    // A new process: it has not stepped yet, so `show` gives what the last one decided.
    const second = new StorageAdmission(redisOf(), config, view, pino({ level: 'silent' }));
    expect((await second.show(second.target(t!.name))).writePool).toMatchObject({ limit: 60, reason: 'hold: idle 2 of 3 steps before the limit decays toward the initial 10' });
    const registry = new Registry();
    registerStorageMetrics(second, registry);
    await second.step();
    expect((await second.show(second.target(t!.name))).writePool).toMatchObject({ limit: 35, reason: 'decay: idle 3 steps, toward the initial 10' });
    const metrics = await registry.metrics();
    expect(metrics).toContain(`gantry_storage_controller_steps_total{target="${t!.name}",mode="write",action="decay"} 1`);
    expect(metrics).toContain(`gantry_storage_pool_size{target="${t!.name}",mode="write"} 35`);
  });

  it('releases the leases and places of attempts that are over, and leaves unknown jobs to the TTL', async () => {
    const [t] = parseStorageTargets(JSON.stringify([{ name: `r${process.pid}`, mountPrefix: '/mnt/r', writeBytesPerSecond: 1e9, readBytesPerSecond: 1e9, write: { initial: 2, min: 2, max: 2 } }]));
    const jobs: Record<string, { attempt: number; state: JobState }> = {
      done: { attempt: 1, state: JobState.JOB_STATE_SUCCEEDED },
      moved: { attempt: 3, state: JobState.JOB_STATE_RUNNING },
      live: { attempt: 2, state: JobState.JOB_STATE_RUNNING },
    };
    const view: ClusterView = { telemetry: async () => [], storageFaults: async () => [], job: async (id) => jobs[id], close: () => undefined };
    const adm = new StorageAdmission(redisOf(), { targets: [t!], controlIntervalMs: 1000, schedulerAddr: 'stub', httpPort: undefined, httpHost: '127.0.0.1' }, view, pino({ level: 'silent' }));
    for (const [jobId, attempt] of [['done', 1], ['live', 2], ['moved', 2], ['unknown', 1]] as const) await adm.store.acquire(t!.name, 'write', { jobId, attempt, rank: 0 }, 60_000, 2);
    expect(await adm.reap()).toBe(2);
    const st = await adm.store.state(t!.name, 'write');
    expect(st.leases.map((l) => l.holder.jobId)).toEqual(['live']);
    expect(st.waiters.map((w) => w.holder.jobId)).toEqual(['unknown']);
    expect(attemptOver({ attempt: 2, state: JobState.JOB_STATE_RECOVERING }, 2)).toBe(true);
    expect(attemptOver({ attempt: 2, state: JobState.JOB_STATE_RUNNING }, 2)).toBe(false);
  });

  it('hands a released slot to the head of the queue at once, not at its next poll', async () => {
    const wake = new LeaseWakeup();
    const order: string[] = [];
    // Sleepers whose own poll is a minute away: only notify can end their sleep within the test.
    const sleepers = ['c', 'a', 'b'].map((id) => wake.sleep('t', 'write', id, 60_000).then(() => order.push(id)));
    wake.notify('t', 'read', ['a', 'b', 'c']);
    wake.notify('t', 'write', ['a', 'b', 'x']);
    await Promise.race([Promise.all(sleepers.slice(1)), new Promise((r) => setTimeout(r, 5_000))]);
    expect(order.sort()).toEqual(['a', 'b']);
    // Two calls of the same holder (a client retrying) sleep side by side: one wake ends both, and
    // neither ends the other (they would wake each other in a loop).
    const again = wake.sleep('t', 'write', 'c', 60_000).then(() => order.push('c again'));
    await new Promise((r) => setTimeout(r, 50));
    expect(order).toEqual(['a', 'b']);
    wake.notify('t', 'write', ['c']);
    await Promise.all([sleepers[0], again]);
    expect(order).toEqual(['a', 'b', 'c', 'c again']);

    // Through the calls: a waiter blocked in AcquireStorageLease is granted when the holder releases.
    const [t] = parseStorageTargets(JSON.stringify([{ name: `h${process.pid}`, mountPrefix: '/mnt/h', writeBytesPerSecond: 1e9, readBytesPerSecond: 1e9, write: { initial: 1, min: 1, max: 1 } }]));
    const adm = new StorageAdmission(redisOf(), { targets: [t!], controlIntervalMs: 1000, schedulerAddr: undefined, httpPort: undefined, httpHost: '127.0.0.1' }, undefined, pino({ level: 'silent' }));
    const calls = storageCalls(adm);
    const mode = StorageLeaseMode.STORAGE_LEASE_MODE_WRITE;
    const first = await calls.acquireStorageLease({ target: t!.name, path: '', mode, holder: { jobId: 'a', attempt: 1, rank: 0, node: '' }, ttlMs: 0, waitMs: 0 });
    expect(first.granted).toBe(true);
    const second = calls.acquireStorageLease({ target: t!.name, path: '', mode, holder: { jobId: 'b', attempt: 1, rank: 0, node: '' }, ttlMs: 0, waitMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect((await adm.store.state(t!.name, 'write')).waiters.map((w) => w.holder.jobId)).toEqual(['b']);
    expect((await calls.releaseStorageLease({ target: t!.name, leaseId: first.lease!.id, jobId: '', attempt: 0 })).released).toBe(1);
    expect(await second).toMatchObject({ granted: true, lease: { id: 'w:b:1:0' } });
  });

  it('admits one holder per node: a waiter whose node holds a lease is passed over, the next node goes, and a release wakes exactly the holder that may go', async () => {
    const [t] = parseStorageTargets(JSON.stringify([{ name: `n${process.pid}`, mountPrefix: '/mnt/n', writeBytesPerSecond: 1e9, readBytesPerSecond: 1e9, write: { initial: 2, min: 2, max: 2 } }]));
    const adm = new StorageAdmission(redisOf(), { targets: [t!], controlIntervalMs: 1000, schedulerAddr: undefined, httpPort: undefined, httpHost: '127.0.0.1' }, undefined, pino({ level: 'silent' }));
    const calls = storageCalls(adm);
    const mode = StorageLeaseMode.STORAGE_LEASE_MODE_WRITE;
    const ask = (jobId: string, rank: number, node: string, waitMs: number) => calls.acquireStorageLease({ target: t!.name, path: '', mode, holder: { jobId, attempt: 1, rank, node }, ttlMs: 0, waitMs });
    expect((await ask('a', 0, 'n1', 0)).granted).toBe(true);
    const a1 = ask('a', 1, 'n1', 30_000); // n1 holds its one lease: waits although a slot is free
    await new Promise((r) => setTimeout(r, 300));
    expect(await ask('b', 0, 'n2', 0)).toMatchObject({ granted: true, leases: 2 });
    const c0 = ask('c', 0, 'n3', 30_000); // the pool is full now
    await new Promise((r) => setTimeout(r, 300));
    const st = await adm.store.state(t!.name, 'write');
    expect(st.waiters.map((w) => [w.id, w.position])).toEqual([['w:a:1:1', 0], ['w:c:1:0', 1]]);
    // What the controller sees: two waiting, but only c's node could take a lease if the pool grew.
    expect(poolView(st, 2, 1)).toEqual({ limit: 2, leases: 2, waiters: 2, ready: 1 });
    expect(await adm.store.grantable(t!.name, 'write', 2, 1)).toEqual([]);
    // b's release frees a slot: c (n3) gets it, a1 stays behind n1's lease.
    await calls.releaseStorageLease({ target: t!.name, leaseId: 'w:b:1:0', jobId: '', attempt: 0 });
    expect(await c0).toMatchObject({ granted: true, lease: { id: 'w:c:1:0' } });
    await calls.releaseStorageLease({ target: t!.name, leaseId: 'w:a:1:0', jobId: '', attempt: 0 });
    expect(await a1).toMatchObject({ granted: true, lease: { id: 'w:a:1:1' } });
  });
});

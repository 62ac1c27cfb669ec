// The health monitor's window against a real redis-server and nats-server: between windows a
// pass learns that none is due without reading (and parsing) the stored state, which holds
// every node's baselines; after its leadership ended it reads it again (another leader may
// have evaluated meanwhile).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Node, NodeState } from '@gantry/proto';
import { connectNats } from '@gantry/service-kit';
import { HealthStore, JobStore, LeaderLease, NodeStore } from '@gantry/store';
import { startNats, type NatsServer } from '../../../../test/harness/infra.js';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import { AgentCommander } from '../../src/agents/commands.js';
import { JobCache } from '../../src/jobs/job-cache.js';
import { HealthMonitor } from '../../src/health-monitor/monitor.js';
import { HealthConfigCache } from '../../src/health-monitor/config-source.js';
import { LogActivity } from '../../src/health-monitor/log-activity.js';
import type { SchedulerContext } from '../../src/context.js';

const log = pino({ level: 'silent' });
const redis = useRedis();
let server: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNats(mkdtempSync(join(tmpdir(), 'gantry-health-monitor-')));
  nc = await connectNats(server.url, 'health-monitor-test', log);
}, 60_000);

afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

function context(epoch: number): SchedulerContext {
  const jobs = new JobStore(redis());
  return {
    log, nc, js: jetstream(nc), redis: redis(), jobs, jobCache: new JobCache(jobs), nodes: new NodeStore(redis()),
    commander: new AgentCommander(nc, log, 3_000, () => 1, generateKeyPairSync('ed25519').privateKey),
    metrics: new Registry(),
    settings: { heartbeatTimeoutMs: 600_000, heartbeatIntervalMs: 2_000, cycleIntervalMs: 1_000, stopGraceSeconds: 5 },
    epoch: () => epoch,
    kick: () => undefined,
    recovered: () => undefined,
    agentEpoch: () => undefined,
  };
}

/** Reads of the stored window state so far: HealthStore.load's HGETALL of the cursors (a window's node reads, HGETALL too, come after it). */
async function stateReads(): Promise<number> {
  return Number(/cmdstat_hgetall:calls=(\d+)/.exec(await redis().info('commandstats'))?.[1] ?? 0);
}

describe('HealthMonitor.evaluateWindow', () => {
  it('reads nothing while no window is due, and reads the stored state again once its leadership ended', async () => {
    const ctx = context(await new LeaderLease(redis(), 'health-monitor-test', 60_000).tryAcquire());
    for (const name of ['hm-0', 'hm-1']) await ctx.nodes.commit({ prev: undefined, next: Node.create({ name, state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId: name, heartbeatMs: Date.now() });
    const store = new HealthStore(redis());
    const monitor = new HealthMonitor(ctx, store, new HealthConfigCache(store, log), new LogActivity(nc));
    const t0 = Date.now();
    await monitor.evaluateWindow(t0);
    expect((await store.load()).stateJson).toContain('hm-1');
    const before = await stateReads();
    await monitor.evaluateWindow(t0 + 5_000);
    await monitor.evaluateWindow(t0 + 30_000);
    expect(await stateReads()).toBe(before);
    monitor.stop();
    await monitor.evaluateWindow(t0 + 35_000);
    expect(await stateReads()).toBeGreaterThan(before);
  });
});

// Quick passes grow while they place every job they decide: a burst of submissions on a
// cluster with room is placed in a few passes, each of which reads every node, instead of one
// pass per SCHEDULER_QUEUE_DEPTH jobs. The real pass (SchedulingLoop.runOnce) against a real
// redis-server and nats-server; no agent answers the assignments, which the pass does not wait for.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { GpuDevice, Job, JobSpec, JobState, Node, NodeState, Topology } from '@gantry/proto';
import { connectNats } from '@gantry/service-kit';
import { JobStore, LeaderLease, NodeStore } from '@gantry/store';
import { startNats, type NatsServer } from '../../../test/harness/infra.js';
import { useRedis } from '../../../libs/store/test/redis-fixture.js';
import { AgentCommander } from '../src/agents/commands.js';
import { JobCache } from '../src/jobs/job-cache.js';
import { RecoveryController } from '../src/recovery/controller.js';
import { ResumeSource } from '../src/recovery/resume.js';
import { SchedulingLoop, nextQuickDepth } from '../src/scheduling-loop.js';
import type { SchedulerContext } from '../src/context.js';

const log = pino({ level: 'silent' });
const redis = useRedis();
let server: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNats(mkdtempSync(join(tmpdir(), 'gantry-depth-')));
  nc = await connectNats(server.url, 'depth-test', log);
}, 60_000);
afterAll(async () => {
  await nc?.drain().catch(() => undefined);
  await server?.stop();
});

describe('nextQuickDepth', () => {
  it('doubles after a quick pass that placed all it decided, up to 4,096 or the configured depth', () => {
    expect(nextQuickDepth(256, 256, 256, 256)).toBe(512);
    expect(nextQuickDepth(4_096, 256, 4_096, 4_096)).toBe(4_096);
    expect(nextQuickDepth(10_000, 10_000, 10_000, 10_000)).toBe(10_000);
  });

  it('falls back to the configured depth after a pass that left a decided job waiting', () => {
    expect(nextQuickDepth(1_024, 256, 1_024, 1_023)).toBe(0);
    expect(nextQuickDepth(256, 256, 256, 0)).toBe(0);
  });
});

describe('a burst of submissions on a cluster with room', () => {
  it('is placed by quick passes that double while every decided job is placed', async () => {
    await redis().flushall();
    const jobs = new JobStore(redis());
    const nodes = new NodeStore(redis());
    const epoch = await new LeaderLease(redis(), 'depth-test', 60_000).tryAcquire();
    for (let i = 0; i < 8; i++) {
      await nodes.commit({
        prev: undefined, reason: 'test', epoch, heartbeatMs: Date.now(),
        next: Node.create({
          name: `n${i}`, state: NodeState.NODE_STATE_READY, address: '127.0.0.1',
          gpus: Array.from({ length: 8 }, (_, g) => GpuDevice.create({ index: g, model: 'NVIDIA H100 80GB HBM3', uuid: `GPU-${i}-${g}` })),
          topology: Topology.create({ leafSwitch: 'leaf-0', spine: 'spine-0' }),
        }),
      });
    }
    const submit = (id: string, at: number) => jobs.submit(Job.create({ id, createdAt: new Date(at), spec: JobSpec.create({ tenant: 't', nodes: 1, gpusPerNode: 1, command: ['true'] }) }), '');
    const ctx: SchedulerContext = {
      log, nc, js: jetstream(nc), redis: redis(), jobs, jobCache: new JobCache(jobs), nodes, metrics: new Registry(),
      commander: new AgentCommander(nc, log, 60_000, () => epoch, generateKeyPairSync('ed25519').privateKey),
      // A full pass at most every 10 minutes: every pass after the first is a quick one.
      settings: { heartbeatTimeoutMs: 60_000, heartbeatIntervalMs: 10_000, cycleIntervalMs: 600_000, stopGraceSeconds: 10, queueDepth: 4 },
      epoch: () => epoch, kick: () => undefined, recovered: () => undefined, agentEpoch: () => undefined,
    };
    const loop = new SchedulingLoop(ctx, new RecoveryController(ctx), new ResumeSource('127.0.0.1:1'));
    const scheduled = async () => (await jobs.idsInState(JobState.JOB_STATE_SCHEDULED)).length;
    // The first pass is a full one.
    await submit('first', 1);
    await loop.runOnce();
    expect(await scheduled()).toBe(1);
    // 63 more than the 4 a quick pass decides; 63 GPUs are free.
    for (let i = 0; i < 63; i++) await submit(`burst-${String(i).padStart(2, '0')}`, 1_000 + i);
    const perPass: number[] = [];
    for (let before = await scheduled(); before < 64; ) {
      await loop.runOnce();
      const after = await scheduled();
      perPass.push(after - before);
      before = after;
      expect(perPass.length).toBeLessThan(10);
    }
    // 4, 8, 16 and 32, then the 3 left (a queue no deeper than the depth is decided whole);
    // at the configured depth alone, 16 passes of 4.
    expect(perPass).toEqual([4, 8, 16, 32, 3]);
  });
});

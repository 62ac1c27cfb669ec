// The node registry's heartbeats against a real nats-server and redis-server: heartbeats that
// arrive together are handled as one batch, and each one's time is still in Redis (the record
// and the index LOST detection reads) within a moment; a heartbeat from another agent instance
// is dropped; a LOST node that heartbeats again returns to the state it was in; a node whose
// heartbeats found nothing to reconcile (and may be skipped while nothing changes) is reconciled
// at once when what it reports changes (a rank of a job the scheduler does not know is stopped,
// through a signed command). The same, with the heartbeats taken in and recorded on the
// scheduler's agent intake thread (a worker thread with its own connections), as the service runs it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { AgentCommandReply, AgentRank, GpuDevice, NodeHeartbeat, NodeState, RankPhase, RegisterNodeRequest } from '@gantry/proto';
import { encode, ensureStreams, subjects, verifyCommand } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';
import { JobStore, keys, NodeStore } from '@gantry/store';
import { startNats, type NatsServer } from '../../../../test/harness/infra.js';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import { AgentCommander } from '../../src/agents/commands.js';
import { AgentMessageGuard } from '../../src/agents/message-guard.js';
import { NodeRegistry } from '../../src/agents/node-registry.js';
import { AgentIntakeThread } from '../../src/agents/intake-thread.js';
import type { HeartbeatFeed, HeartbeatSink } from '../../src/agents/heartbeat-recorder.js';
import { JobCache } from '../../src/jobs/job-cache.js';
import type { SchedulerContext } from '../../src/context.js';

const log = pino({ level: 'silent' });
const redis = useRedis();
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
let server: NatsServer;
let nc: NatsConnection;
/** Verified stop commands the agents received, as "node:jobId:rank". */
const stops: string[] = [];
const NODES = ['hb-0', 'hb-1', 'hb-2', 'hb-3', 'hb-4'];

beforeAll(async () => {
  server = await startNats(mkdtempSync(join(tmpdir(), 'gantry-heartbeats-')));
  nc = await connectNats(server.url, 'heartbeats-test', log);
  // The intake thread also consumes telemetry while it leads: the streams exist, as in a deployment.
  await ensureStreams(nc, { log });
  for (const node of NODES) {
    nc.subscribe(subjects.agentCommand(node), {
      callback: (_err, msg) => {
        const cmd = verifyCommand([publicKey], node, msg.data);
        if (cmd.command?.$case === 'stop') stops.push(`${node}:${cmd.command.stop.jobId}:${cmd.command.stop.rank}`);
        msg.respond(encode(AgentCommandReply, AgentCommandReply.create({ ok: true })));
      },
    });
  }
  await nc.flush();
}, 60_000);

afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

function context(): SchedulerContext {
  const jobs = new JobStore(redis());
  return {
    log, nc, js: jetstream(nc), redis: redis(), jobs, jobCache: new JobCache(jobs), nodes: new NodeStore(redis()),
    // Resends held back for a minute: a second stop for the same rank would mean a second reconcile that found it.
    commander: new AgentCommander(nc, log, 60_000, () => 1, privateKey),
    metrics: new Registry(),
    settings: { heartbeatTimeoutMs: 600_000, heartbeatIntervalMs: 2_000, cycleIntervalMs: 1_000, stopGraceSeconds: 5 },
    epoch: () => 1,
    kick: () => undefined,
    recovered: () => undefined,
    agentEpoch: () => undefined,
  };
}

const gpus = [0, 1].map((index) => GpuDevice.create({ index, uuid: `GPU-${index}`, model: 'sim', memoryMib: 1024 }));
const heartbeat = (node: string, instanceId: string, ranks: AgentRank[] = []) =>
  nc.publish(subjects.agentHeartbeat(node), encode(NodeHeartbeat, NodeHeartbeat.create({ node, seq: 1, time: new Date(), ranks, instanceId })));

async function until(what: () => Promise<boolean>, ms = 5_000): Promise<void> {
  for (const end = Date.now() + ms; !(await what());) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each([
  { where: 'on the main thread', thread: false },
  { where: 'on the agent intake thread', thread: true },
])('NodeRegistry heartbeats $where', ({ thread }) => {
  it('records heartbeats arriving together, drops another instance\'s, brings a LOST node back, and reconciles a node when what it reports changes', async () => {
    await redis().flushall();
    await redis().set(keys.leaderEpoch, '1');
    stops.length = 0;
    const ctx = context();
    let worker: AgentIntakeThread | undefined;
    const feed = thread
      ? (heartbeats: HeartbeatSink): HeartbeatFeed => (worker = new AgentIntakeThread(
        { natsUrl: server.url, redis: { url: redis.url(), waitReplicas: 0, waitTimeoutMs: 0 }, logLevel: 'silent', instanceId: 'test', statsEveryMs: 100 },
        { heartbeats, telemetry: { stored: () => undefined }, guard: AgentMessageGuard.of(ctx.metrics, log) }, log, ctx.metrics))
      : undefined;
    const registry = new NodeRegistry(ctx, feed);
    await worker?.start();
    for (const node of NODES) {
      const res = await registry.register(encode(RegisterNodeRequest, RegisterNodeRequest.create({ node, address: '127.0.0.1', gpus, instanceId: `${node}-a` })), subjects.agentRegister(node));
      expect(res.accepted).toBe(true);
    }
    await registry.start();
    try {
      // All at once: every node's time lands in the record and the index.
      const sent = Date.now();
      for (const node of NODES) heartbeat(node, `${node}-a`);
      await until(async () => (await Promise.all(NODES.map((n) => redis().zscore(keys.heartbeats, n)))).every((s) => Number(s) >= sent));
      const recs = await ctx.nodes.getMany(NODES);
      expect(recs.map((r) => r.heartbeatMs >= sent)).toEqual(NODES.map(() => true));

      // Another instance of hb-1 is not heard; hb-0's own heartbeat sent after it is.
      const before = Number(await redis().zscore(keys.heartbeats, 'hb-1'));
      heartbeat('hb-1', 'someone-else');
      const later = Date.now();
      heartbeat('hb-0', 'hb-0-a');
      await until(async () => Number(await redis().zscore(keys.heartbeats, 'hb-0')) >= later);
      expect(Number(await redis().zscore(keys.heartbeats, 'hb-1'))).toBe(before);

      // A LOST node (held out as DRAINING before it went silent) heartbeats again: DRAINING again.
      const rec = (await ctx.nodes.get('hb-2'))!;
      const draining = await ctx.nodes.commit({ prev: rec, next: { ...rec.node, state: NodeState.NODE_STATE_DRAINING }, reason: 'test' });
      await ctx.nodes.commit({ prev: draining, next: { ...draining.node, state: NodeState.NODE_STATE_LOST, stateBeforeLost: NodeState.NODE_STATE_DRAINING }, reason: 'test' });
      heartbeat('hb-2', 'hb-2-a');
      await until(async () => (await ctx.nodes.get('hb-2'))!.node.state === NodeState.NODE_STATE_DRAINING);

      // hb-3 has reported nothing to do several times; the heartbeat that reports a rank of a job
      // nobody knows gets it stopped, once (the resend interval holds back a repeat).
      for (let i = 0; i < 3; i++) {
        heartbeat('hb-3', 'hb-3-a');
        await new Promise((r) => setTimeout(r, 120));
      }
      expect(stops).toEqual([]);
      const ghost = AgentRank.create({ jobId: 'no-such-job', attempt: 1, rank: 0, pid: 42, phase: RankPhase.RANK_PHASE_STARTED });
      heartbeat('hb-3', 'hb-3-a', [ghost]);
      await until(async () => stops.length > 0);
      expect(stops).toEqual(['hb-3:no-such-job:0']);
      // Drops made on the intake thread are counted on this one's metrics, and so is the thread's own health.
      expect(await AgentMessageGuard.of(ctx.metrics, log).count('heartbeat', 'instance-mismatch')).toBe(1);
      if (thread) {
        await until(async () => ((await ctx.metrics.getSingleMetric('gantry_intake_thread_heap_used_bytes')?.get())?.values[0]?.value ?? 0) > 0);
        const delays = (await ctx.metrics.getSingleMetric('gantry_intake_thread_event_loop_delay_seconds')!.get()).values;
        expect(delays.map((v) => v.labels.quantile).sort()).toEqual(['max', 'p99']);
        for (const v of delays) expect(v.value).toBeGreaterThan(0);
      }
    } finally {
      registry.stop();
      await registry.close();
    }
  });
});

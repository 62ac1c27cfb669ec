// The telemetry ingest against a real nats-server and redis-server: batches delivered together
// are written in one pipeline, and what readers get back is what the agents published, each
// node's history (and NFS WRITE series) in order; batches from another instance, for another node or undecodable
// are dropped (and acknowledged, so never redelivered), and so is a replaced agent process's
// batch stamped after its successor started (one stamped before is stored); nothing is left
// unacknowledged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { GpuTelemetry, Node, NodeState, TelemetryBatch } from '@gantry/proto';
import { consumers, encode, ensureStreams, streams, subjects } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';
import { JobStore, NodeStore, NodeTelemetryStore, nfsWriteSampleOf } from '@gantry/store';
import { startNats, type NatsServer } from '../../../../test/harness/infra.js';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import { AgentCommander } from '../../src/agents/commands.js';
import { JobCache } from '../../src/jobs/job-cache.js';
import { AgentMessageGuard } from '../../src/agents/message-guard.js';
import { TelemetryBatchIngest, telemetryMetrics } from '../../src/telemetry/batch-ingest.js';
import type { SchedulerContext } from '../../src/context.js';

const log = pino({ level: 'silent' });
const redis = useRedis();
let server: NatsServer;
let nc: NatsConnection;
const NODES = ['tl-0', 'tl-1', 'tl-2'];
const T0 = Date.UTC(2026, 0, 1);

beforeAll(async () => {
  server = await startNats(mkdtempSync(join(tmpdir(), 'gantry-telemetry-')));
  nc = await connectNats(server.url, 'telemetry-test', log);
  await ensureStreams(nc, { log });
}, 60_000);

afterAll(async () => {
  await nc?.drain();
  await server?.stop();
});

function context(): SchedulerContext {
  const jobs = new JobStore(redis());
  return {
    log, nc, js: jetstream(nc), redis: redis(), jobs, jobCache: new JobCache(jobs), nodes: new NodeStore(redis()),
    commander: new AgentCommander(nc, log, 60_000, () => 1, generateKeyPairSync('ed25519').privateKey),
    metrics: new Registry(),
    settings: { heartbeatTimeoutMs: 600_000, heartbeatIntervalMs: 2_000, cycleIntervalMs: 1_000, stopGraceSeconds: 5 },
    epoch: () => 1,
    kick: () => undefined,
    recovered: () => undefined,
    agentEpoch: () => undefined,
  };
}

const batch = (node: string, seq: number, instanceId = `agent-${node}`) => TelemetryBatch.create({
  node, seq, instanceId, time: new Date(T0 + seq * 10_000),
  gpus: [0, 1].map((index) => GpuTelemetry.create({ index, uuid: `GPU-${node}-${index}`, utilizationGpuPercent: seq + index, temperatureGpuCelsius: 40 + seq })),
});
const publish = (subjectNode: string, data: Uint8Array) => jetstream(nc).publish(subjects.telemetry(subjectNode), data);

async function until(what: () => Promise<boolean>, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !(await what());) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function metric(ctx: SchedulerContext, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = ctx.metrics.getSingleMetric(name);
  const values = (await m?.get())?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((s, v) => s + v.value, 0);
}

describe('telemetry ingest', () => {
  it('stores batches delivered together in order per node, as published, and drops (acknowledged) what it must not store', async () => {
    const ctx = context();
    for (const node of NODES) {
      await ctx.nodes.commit({ prev: undefined, next: Node.create({ name: node, state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId: `agent-${node}`, instanceSinceMs: T0 });
    }
    const published = new Map<string, TelemetryBatch[]>(NODES.map((n) => [n, []]));
    // All in the stream before the ingest starts: delivered in one pull, written together.
    for (let seq = 1; seq <= 3; seq++) {
      for (const node of NODES) {
        const b = batch(node, seq);
        published.get(node)!.push(TelemetryBatch.decode(encode(TelemetryBatch, b)));
        await publish(node, encode(TelemetryBatch, b));
      }
    }
    await publish('tl-0', encode(TelemetryBatch, batch('tl-0', 9, 'agent-other')));
    await publish('tl-1', encode(TelemetryBatch, batch('tl-2', 9)));
    await publish('tl-2', Uint8Array.from([0xff, 0xff, 0xff, 0xff]));

    const ingest = new TelemetryBatchIngest({ nc, redis: redis(), log, guard: AgentMessageGuard.of(ctx.metrics, log) }, telemetryMetrics(ctx.metrics));
    await ingest.start();
    try {
      await until(async () => (await metric(ctx, 'gantry_telemetry_batches_total')) >= 9);
      const store = new NodeTelemetryStore(redis());
      for (const node of NODES) {
        const got = await store.get(node, 10);
        const mine = published.get(node)!;
        expect(got.latest).toEqual(mine[2]);
        expect(got.history).toEqual([mine[1], mine[0]]);
        // Each stored batch's NFS WRITE sample too (the report's series); none of a dropped one.
        expect((await store.nfsWritesSince(node, 0)).samples).toEqual(mine.map(nfsWriteSampleOf));
      }
      expect(await metric(ctx, 'gantry_agent_messages_dropped_total', { kind: 'telemetry', reason: 'instance-mismatch' })).toBe(1);
      expect(await metric(ctx, 'gantry_agent_messages_dropped_total', { kind: 'telemetry', reason: 'node-mismatch' })).toBe(1);

      // And while running: a batch published now lands on top of the history.
      const next = batch('tl-1', 4);
      await publish('tl-1', encode(TelemetryBatch, next));
      await until(async () => (await store.get('tl-1', 0)).latest?.seq === 4);
      expect((await store.get('tl-1', 10)).history.map((b) => b.seq)).toEqual([3, 2, 1]);
      expect(await metric(ctx, 'gantry_telemetry_batches_total')).toBe(10);

      // tl-2 registered again by a new agent process at T0 + 100 s: the old one's batch stamped
      // before that is still believed (it buffered it), one stamped after is a stale process's.
      const prev = await ctx.nodes.get('tl-2');
      await ctx.nodes.commit({ prev, next: prev!.node, reason: 're-registered', instanceId: 'agent-tl-2-new', instanceSinceMs: T0 + 100_000 });
      await publish('tl-2', encode(TelemetryBatch, batch('tl-2', 15)));
      await publish('tl-2', encode(TelemetryBatch, batch('tl-2', 5)));
      await until(async () => (await store.get('tl-2', 0)).latest?.seq === 5);
      expect(await metric(ctx, 'gantry_agent_messages_dropped_total', { kind: 'telemetry', reason: 'stale-instance' })).toBe(1);
      expect(await metric(ctx, 'gantry_telemetry_batches_total')).toBe(11);

      // Every message was acknowledged or terminated: nothing waits for redelivery.
      const jsm = await jetstreamManager(nc);
      await until(async () => {
        const info = await jsm.consumers.info(streams.telemetry.name, consumers.schedulerTelemetry);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
    } finally {
      await ingest.stop();
    }
  }, 60_000);
});

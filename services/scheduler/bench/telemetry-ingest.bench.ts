// `pnpm bench:telemetry`: the scheduler's telemetry ingest (TelemetryBatchIngest: the durable
// JetStream consumer, size/node/instance checks, the store write) draining batches of the
// simulated agent's real shape (SimulatedBackend -> TelemetryCollector, an 8-GPU host, ~13 KB)
// against a real NATS and Redis. The batches are published before the ingest starts, so the
// CPU measured over the drain is this process's ingest only (plus redis-server's, printed apart).
// Then what one node's telemetry takes in Redis once its history and NFS series are full
// (MEMORY USAGE of its keys), and what deriving a batch's NFS WRITE sample costs the store's
// write path (NodeTelemetryStore.recordCheckedCall does it per batch) beside the header read.
// Env: BENCH_TELEMETRY_NODES (200), BENCH_TELEMETRY_BATCHES (4000).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { Redis } from 'ioredis';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { GpuDevice, Node, NodeState, TelemetryBatch } from '@gantry/proto';
import { encode, ensureStreams, streams, subjects } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';
import {
  JobStore, LeaderLease, NFS_WRITE_SERIES_CAP, NodeStore, NodeTelemetryStore, TELEMETRY_HISTORY_CAP, keys, readBatchHeader, scriptRunner,
} from '@gantry/store';
import { nfsWriteSampleBytes } from '../../../libs/store/src/nfs-write-sample.js';
import { TelemetryCollector } from '../../node-agent/src/collectors/index.js';
import { SimulatedBackend } from '../../node-agent/src/device/index.js';
import { startNats, startRedis } from '../../../test/harness/infra.js';
import { AgentCommander } from '../src/agents/commands.js';
import { JobCache } from '../src/jobs/job-cache.js';
import { AgentMessageGuard } from '../src/agents/message-guard.js';
import { TelemetryBatchIngest, telemetryMetrics } from '../src/telemetry/batch-ingest.js';
import type { SchedulerContext } from '../src/context.js';
import { env } from './env.js';

const NODES = env('BENCH_TELEMETRY_NODES', 200);
const BATCHES = env('BENCH_TELEMETRY_BATCHES', 4000);

const work = mkdtempSync(join(tmpdir(), 'gantry-bench-telemetry-'));
const [natsServer, redisServer] = await Promise.all([startNats(join(work, 'nats')), startRedis(join(work, 'redis'))]);
const log = pino({ level: 'silent' });
const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
const nc = await connectNats(natsServer.url, 'bench', log);
await ensureStreams(nc, { log });
const lease = new LeaderLease(redis, 'bench', 60_000);
const epoch = await lease.tryAcquire();
const jobs = new JobStore(redis);
const nodes = new NodeStore(redis);

const names = Array.from({ length: NODES }, (_, i) => `n${String(i).padStart(5, '0')}`);
await Promise.all(names.map((name) => nodes.commit({
  prev: undefined, epoch, heartbeatMs: Date.now(), reason: 'bench', instanceId: name,
  next: Node.create({ name, state: NodeState.NODE_STATE_READY, address: '127.0.0.1', gpus: Array.from({ length: 8 }, (_, g) => GpuDevice.create({ index: g, model: 'NVIDIA H100 80GB HBM3', uuid: `GPU-${name}-${g}` })) }),
})));

// Each simulated host's batches 10 s apart, as a running agent's; published round-robin.
const hosts = names.map((node, i) => {
  const backend = new SimulatedBackend({ model: { node }, seed: i + 1, startMs: Date.now() - 3_600_000 });
  return { node, backend, collector: new TelemetryCollector(backend, { node, now: () => backend.nowMs() }), t: 0 };
});
const js = jetstream(nc);
let bytes = 0;
/** Every published batch's bytes, for the derivation timing below. */
const published: Uint8Array[] = [];
for (let k = 0; k < BATCHES; k += NODES) {
  await Promise.all(hosts.slice(0, Math.min(NODES, BATCHES - k)).map(async (h) => {
    h.t += 10;
    h.backend.advanceTo(h.t);
    const batch = await h.collector.collect();
    batch.instanceId = h.node;
    const data = encode(TelemetryBatch, batch);
    bytes += data.length;
    published.push(data);
    await js.publish(subjects.telemetry(h.node), data, { timeout: 30_000 });
  }));
}
console.log(`== Telemetry ingest: ${BATCHES} batches of ${NODES} simulated 8-GPU hosts, ${(bytes / BATCHES / 1024).toFixed(1)} KiB each, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} ==`);

const ctx: SchedulerContext = {
  log, nc, js, redis, jobs, jobCache: new JobCache(jobs), nodes, metrics: new Registry(),
  commander: new AgentCommander(nc, log, 60_000, () => epoch, generateKeyPairSync('ed25519').privateKey),
  settings: { heartbeatTimeoutMs: 60_000, heartbeatIntervalMs: 10_000, cycleIntervalMs: 1_000, stopGraceSeconds: 10 },
  epoch: () => epoch,
  kick: () => undefined,
  recovered: () => undefined,
  agentEpoch: () => undefined,
};
// In process here (the scheduler runs it on its agent intake thread): the same ingest, measured alone.
const ingest = new TelemetryBatchIngest({ nc, redis, log, guard: AgentMessageGuard.of(ctx.metrics, log) }, telemetryMetrics(ctx.metrics));
const stored = () => ctx.metrics.getSingleMetric('gantry_telemetry_batches_total')!.get().then((m) => m.values[0]?.value ?? 0);
const redisCpu = async (): Promise<number> => {
  const info = await redis.info('cpu');
  const f = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return f('used_cpu_user') + f('used_cpu_sys');
};

// BENCH_PROFILE=<file>: a V8 CPU profile of the drain only, for `node --cpu-prof`-style reading.
const profileTo = process.env.BENCH_PROFILE;
const profiler = profileTo ? new Session() : undefined;
const post = (method: string, params?: object) => new Promise<{ profile?: object }>((resolve, reject) => profiler!.post(method, params, (err, res) => (err ? reject(err) : resolve(res ?? {}))));
if (profiler) {
  profiler.connect();
  await post('Profiler.enable');
  await post('Profiler.start');
}
const redisCpu0 = await redisCpu();
const cpu0 = process.cpuUsage();
const start = performance.now();
await ingest.start();
while (await stored() < BATCHES) await new Promise((r) => setTimeout(r, 5));
const wallS = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
const redisS = (await redisCpu()) - redisCpu0;
if (profiler) writeFileSync(profileTo!, JSON.stringify((await post('Profiler.stop')).profile));
const cpuMs = (cpu.user + cpu.system) / 1000;
console.log(`  drained in ${wallS.toFixed(2)} s: ${(BATCHES / wallS).toFixed(0)} batches/s`);
console.log(`  ingest CPU ${(cpuMs / BATCHES).toFixed(3)} ms/batch (user ${(cpu.user / 1000 / BATCHES).toFixed(3)}, sys ${(cpu.system / 1000 / BATCHES).toFixed(3)}); redis-server ${(redisS * 1000 / BATCHES).toFixed(3)} ms/batch`);
console.log(`  load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

// What readers see: the latest batch of one node decodes to what its host published last.
const check = await new NodeTelemetryStore(redis).get(names[0]!, 2);
if (!check.latest || check.latest.node !== names[0] || check.history.length !== 2) throw new Error('stored telemetry is not what was published');

await ingest.stop();

// One host's batches until its history and NFS series are full, through the store's write
// (recordCall: the same layout and caps as the ingest's checked call).
const probe = hosts[0]!;
const scripts = scriptRunner(redis);
const probeName = 'memory-probe';
for (let k = 0; k <= Math.max(TELEMETRY_HISTORY_CAP, NFS_WRITE_SERIES_CAP); k++) {
  probe.t += 10;
  probe.backend.advanceTo(probe.t);
  const batch = await probe.collector.collect();
  batch.node = probeName;
  const call = NodeTelemetryStore.recordCall(probeName, Buffer.from(TelemetryBatch.encode(batch).finish()));
  await scripts.run(call.name, call.keys, call.args);
}
const usage = async (key: string) => Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') ?? 0);
const parts = { latest: await usage(keys.nodeTelemetry(probeName)), history: await usage(keys.nodeTelemetryHistory(probeName)), nfsSeries: await usage(keys.nodeNfsWrites(probeName)) };
const perNode = parts.latest + parts.history + parts.nfsSeries;
console.log(`  Redis per node, history (${TELEMETRY_HISTORY_CAP} batches) and NFS series (${NFS_WRITE_SERIES_CAP} samples) full: ${(perNode / 1024).toFixed(0)} KiB `
  + `(latest ${(parts.latest / 1024).toFixed(1)}, history ${(parts.history / 1024).toFixed(0)}, NFS series ${(parts.nfsSeries / 1024).toFixed(1)} KiB); ${(perNode * 10_000 / 2 ** 30).toFixed(1)} GiB at 10,000 nodes`);

// The per-batch work recordCheckedCall adds to the ingest (the sample) beside what it had (the header).
/** CPU microseconds per batch, the least of 5 passes over every published batch (the machine is shared). */
const timePerBatch = (fn: (b: Uint8Array) => unknown): number => {
  let best = Infinity;
  for (let pass = 0; pass < 6; pass++) {
    const cpu0 = process.cpuUsage();
    for (const b of published) fn(b);
    const used = process.cpuUsage(cpu0);
    if (pass > 0) best = Math.min(best, (used.user + used.system) / published.length); // the first warms up
  }
  return best;
};
console.log(`  CPU per batch: header read ${timePerBatch(readBatchHeader).toFixed(1)} us, NFS WRITE sample ${timePerBatch(nfsWriteSampleBytes).toFixed(1)} us (both in the ingest's ms/batch above)`);
await jetstreamManager(nc).then((m) => m.streams.delete(streams.telemetry.name)).catch(() => undefined);
await nc.close();
redis.disconnect();
await Promise.all([natsServer.stop(), redisServer.stop()]);
process.exit(0);

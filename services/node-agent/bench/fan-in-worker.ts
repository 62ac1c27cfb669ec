// One process of simulated agents for the fan-in benchmark: registers `count` nodes, then
// every interval each one heartbeats and publishes a real TelemetryBatch (simulated backend
// -> the same collectors and encoding as a real agent) over one shared NATS connection,
// staggered across the interval as real hosts would be.
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { GpuDevice, NodeHeartbeat, RegisterNodeRequest, TelemetryBatch, Topology } from '@gantry/proto';
import { encode, subjects } from '@gantry/bus';
import { TelemetryCollector } from '../src/collectors/index.js';
import { SimulatedBackend } from '../src/device/index.js';

const [natsUrl, firstArg, countArg, intervalArg, durationArg] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const intervalMs = Number(intervalArg);
const durationMs = Number(durationArg);

const nc = await connect({ servers: natsUrl!, maxReconnectAttempts: -1 });
const js = jetstream(nc);
const agents = await Promise.all(Array.from({ length: count }, async (_, i) => {
  const node = `bench-${String(first + i).padStart(5, '0')}`;
  const backend = new SimulatedBackend({ model: { node }, seed: first + i, clock: 'wall' });
  const gpus = (await backend.fingerprint()).map((g) => GpuDevice.create({ index: g.index, uuid: g.uuid, model: g.model, memoryMib: g.memoryMiB, pciBusId: g.pciBusId }));
  return { node, gpus, collector: new TelemetryCollector(backend, { node }), seq: 0 };
}));

for (const a of agents) {
  const leaf = Math.floor((first + agents.indexOf(a)) / 32);
  const req = RegisterNodeRequest.create({ node: a.node, address: '127.0.0.1', gpus: a.gpus, topology: Topology.create({ leafSwitch: `leaf-${leaf}`, spine: `spine-${Math.floor(leaf / 16)}` }), agentVersion: 'bench', deviceBackend: 'simulated', instanceId: a.node });
  for (;;) {
    try { await nc.request(subjects.agentRegister(a.node), encode(RegisterNodeRequest, req), { timeout: 10_000 }); break; } catch { await new Promise((r) => setTimeout(r, 200)); }
  }
}
process.send?.({ type: 'registered', count });

let published = 0;
let failed = 0;
let cpuMs = 0;
const end = Date.now() + durationMs;
await Promise.all(agents.map(async (a, i) => {
  // Stagger: agent i reports at offset i/count of the interval.
  await new Promise((r) => setTimeout(r, (intervalMs * i) / count));
  while (Date.now() < end) {
    const started = Date.now();
    const c0 = process.cpuUsage();
    const batch = await a.collector.collect();
    const data = encode(TelemetryBatch, batch);
    cpuMs += (process.cpuUsage(c0).user + process.cpuUsage(c0).system) / 1000;
    nc.publish(subjects.agentHeartbeat(a.node), encode(NodeHeartbeat, { node: a.node, seq: ++a.seq, time: new Date(), ranks: [], instanceId: a.node, highestEpoch: 0 }));
    try {
      await js.publish(subjects.telemetry(a.node), data, { msgID: `${a.node}.${batch.seq}` });
      published++;
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
  }
}));
process.send?.({ type: 'done', published, failed, cpuMs });
await nc.drain();

// One process of simulated agents for the fan-in benchmark. Each node speaks the agent's
// real protocol with the real messages, over one shared NATS connection:
//   - registers (RegisterNodeRequest, 8 simulated GPUs, leaf/spine topology);
//   - takes the scheduler's signed commands (verified with its public key like an agent) and
//     replies; an assignment becomes a running rank, reported as a RankEvent STARTED on
//     JetStream, a stop ends it with a RankEvent EXITED (no process runs: this benchmarks the
//     control plane, not the rank runner);
//   - heartbeats every heartbeat interval with its running ranks (NodeHeartbeat), and
//   - publishes a real TelemetryBatch every telemetry interval (simulated backend -> the same
//     collectors and encoding as a real agent), both staggered over their interval.
// It samples the scheduler's heartbeat processing lag: for every `lagEvery`-th node, 0.9 of an
// interval after a heartbeat (before the next one can overwrite it) it reads the time the
// scheduler recorded for it (Redis, the heartbeat index); a heartbeat not yet recorded then
// counts as lagging by more than that.
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { AgentCommandReply, AgentRank, GpuDevice, NodeHeartbeat, RankEvent, RankPhase, RegisterNodeRequest, TelemetryBatch, Topology } from '@gantry/proto';
import { commandVerifyKeys, encode, subjects, verifyCommand } from '@gantry/bus';
import { keys } from '@gantry/store';
import { TelemetryCollector } from '../src/collectors/index.js';
import { SimulatedBackend } from '../src/device/index.js';

export interface FanInWorkerArgs {
  natsUrl: string;
  redisUrl: string;
  publicKeyFile: string;
  first: number;
  count: number;
  heartbeatMs: number;
  telemetryMs: number;
  lagEvery: number;
}

export type FanInMessage =
  | { type: 'registered'; count: number }
  | { type: 'stats'; heartbeats: number; rankReports: number; ranks: number; telemetry: number; telemetryFailed: number; assigns: number; stops: number; lagMs: number[]; lagMissed: number; cpuMs: number };

const args = JSON.parse(process.argv[2]!) as FanInWorkerArgs;
const commandKeys = commandVerifyKeys(readFileSync(args.publicKeyFile, 'utf8'));
const nc = await connect({ servers: args.natsUrl, maxReconnectAttempts: -1 });
const js = jetstream(nc);
const redis = new Redis(args.redisUrl);

interface SimAgent {
  node: string;
  gpus: GpuDevice[];
  collector: TelemetryCollector;
  ranks: Map<string, AgentRank>;
  seq: number;
  highestEpoch: number;
}

const agents: SimAgent[] = await Promise.all(Array.from({ length: args.count }, async (_, i) => {
  const node = `bench-${String(args.first + i).padStart(5, '0')}`;
  const backend = new SimulatedBackend({ model: { node }, seed: args.first + i, clock: 'wall' });
  const gpus = (await backend.fingerprint()).map((g) => GpuDevice.create({ index: g.index, uuid: g.uuid, model: g.model, memoryMib: g.memoryMiB, pciBusId: g.pciBusId }));
  return { node, gpus, collector: new TelemetryCollector(backend, { node }), ranks: new Map(), seq: 0, highestEpoch: 0 };
}));

let assigns = 0;
let stops = 0;
let pid = 100_000;
function publishRankEvent(a: SimAgent, r: AgentRank, phase: RankPhase): void {
  const exited = phase === RankPhase.RANK_PHASE_EXITED;
  const event = RankEvent.create({ eventId: `${r.jobId}.${r.attempt}.${r.rank}.${exited ? 'exited' : 'started'}`, node: a.node, jobId: r.jobId, attempt: r.attempt, rank: r.rank, phase, pid: r.pid, exitCode: exited ? 0 : undefined, signal: exited ? 'SIGTERM' : '', time: new Date(), instanceId: a.node });
  void js.publish(subjects.rankEvent(a.node), encode(RankEvent, event), { msgID: event.eventId, timeout: 30_000 }).catch(() => undefined);
}

for (const a of agents) {
  nc.subscribe(subjects.agentCommand(a.node), {
    callback: (err, msg) => {
      if (err) return;
      let reply: AgentCommandReply;
      try {
        const cmd = verifyCommand(commandKeys, a.node, msg.data);
        a.highestEpoch = Math.max(a.highestEpoch, cmd.epoch);
        const c = cmd.command;
        if (c?.$case === 'assign') {
          const key = `${c.assign.jobId}/${c.assign.attempt}/${c.assign.rank}`;
          if (!a.ranks.has(key)) {
            const r = AgentRank.create({ jobId: c.assign.jobId, attempt: c.assign.attempt, rank: c.assign.rank, pid: pid++, phase: RankPhase.RANK_PHASE_STARTED });
            a.ranks.set(key, r);
            assigns++;
            publishRankEvent(a, r, RankPhase.RANK_PHASE_STARTED);
          }
          reply = { ok: true, message: 'started' };
        } else if (c?.$case === 'stop') {
          const key = `${c.stop.jobId}/${c.stop.attempt}/${c.stop.rank}`;
          const r = a.ranks.get(key);
          if (r) {
            a.ranks.delete(key);
            stops++;
            publishRankEvent(a, r, RankPhase.RANK_PHASE_EXITED);
          }
          reply = { ok: true, message: 'stopping' };
        } else {
          reply = { ok: false, message: 'empty command' };
        }
      } catch (e) {
        reply = { ok: false, message: (e as Error).message };
      }
      msg.respond(encode(AgentCommandReply, reply));
    },
  });
}

for (const [i, a] of agents.entries()) {
  const leaf = Math.floor((args.first + i) / 32);
  const req = RegisterNodeRequest.create({ node: a.node, address: '127.0.0.1', gpus: a.gpus, topology: Topology.create({ leafSwitch: `leaf-${leaf}`, spine: `spine-${Math.floor(leaf / 16)}` }), agentVersion: 'bench', deviceBackend: 'simulated', instanceId: a.node });
  for (;;) {
    try {
      await nc.request(subjects.agentRegister(a.node), encode(RegisterNodeRequest, req), { timeout: 10_000 });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
process.send?.({ type: 'registered', count: args.count } satisfies FanInMessage);

let heartbeats = 0;
let rankReports = 0;
let telemetry = 0;
let telemetryFailed = 0;
let cpuMs = 0;
let lagMs: number[] = [];
let lagMissed = 0;
const timers: NodeJS.Timeout[] = [];
let stopping = false;

function heartbeat(a: SimAgent, i: number): void {
  const sent = Date.now();
  const ranks = [...a.ranks.values()];
  nc.publish(subjects.agentHeartbeat(a.node), encode(NodeHeartbeat, { node: a.node, seq: ++a.seq, time: new Date(sent), ranks, instanceId: a.node, highestEpoch: a.highestEpoch }));
  heartbeats++;
  rankReports += ranks.length;
  if (i % args.lagEvery !== 0) return;
  setTimeout(() => {
    if (stopping) return; // the connection is closing
    void redis.zscore(keys.heartbeats, a.node).then((score) => {
      const recorded = Number(score);
      if (recorded >= sent) lagMs.push(recorded - sent);
      else lagMissed++;
    });
  }, args.heartbeatMs * 0.9).unref();
}

async function report(a: SimAgent): Promise<void> {
  const c0 = process.cpuUsage();
  const batch = await a.collector.collect();
  batch.instanceId = a.node; // the instance it registered as: the scheduler drops reports of any other
  const data = encode(TelemetryBatch, batch);
  const c = process.cpuUsage(c0);
  cpuMs += (c.user + c.system) / 1000;
  try {
    await js.publish(subjects.telemetry(a.node), data, { msgID: `${a.node}.${batch.seq}`, timeout: 30_000 });
    telemetry++;
  } catch {
    telemetryFailed++;
  }
}

agents.forEach((a, i) => {
  // Staggered: node i at offset i/count of each interval, as independent hosts would be.
  timers.push(setTimeout(() => timers.push(setInterval(() => heartbeat(a, i), args.heartbeatMs)), (args.heartbeatMs * i) / agents.length));
  // telemetryMs 0: heartbeats only (what the scheduler spends on heartbeats alone).
  if (args.telemetryMs > 0) timers.push(setTimeout(() => timers.push(setInterval(() => void report(a), args.telemetryMs)), (args.telemetryMs * i) / agents.length));
});

// The parent asks for counters (and resets the lag samples) at the start and end of the measurement.
process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') {
    const ranks = agents.reduce((n, a) => n + a.ranks.size, 0);
    process.send?.({ type: 'stats', heartbeats, rankReports, ranks, telemetry, telemetryFailed, assigns, stops, lagMs, lagMissed, cpuMs } satisfies FanInMessage);
    lagMs = [];
    lagMissed = 0;
  } else if (m.type === 'stop') {
    stopping = true;
    timers.forEach((t) => clearTimeout(t));
    void Promise.all([nc.drain(), redis.quit()]).then(() => process.exit(0));
  }
});

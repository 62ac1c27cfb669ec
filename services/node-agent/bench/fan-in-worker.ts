// One process of simulated agents for the fan-in benchmark. Each node speaks the agent's
// real protocol with the real messages, over one shared NATS connection:
//   - registers (RegisterNodeRequest, 8 simulated GPUs, leaf/spine topology);
//   - takes the scheduler's signed commands (verified with its public key like an agent) and
//     replies; an assignment becomes a running rank, reported as a RankEvent STARTED on
//     JetStream, a stop ends it with a RankEvent EXITED (no process runs: this benchmarks the
//     control plane, not the rank runner);
//   - heartbeats every heartbeat interval with its running ranks (NodeHeartbeat), and
//   - publishes a TelemetryBatch every telemetry interval, both staggered over their interval.
//
// What is simulated cheaply, so that 10,000 nodes fit beside the scheduler on 2 cores, without
// changing what the scheduler receives:
//   - telemetry: each node's batch is produced by the real TelemetryCollector over the
//     SimulatedBackend (same collectors and encoding as a real agent) twice at start (the
//     second carries rates); its bytes are then re-published every interval with a fresh
//     time and seq. A real collection costs 1.3-1.8 ms of CPU here, 15 s/s for 10,000 nodes,
//     which would measure the simulators instead of the scheduler's ingest. The time and seq
//     are encoded apart and put before the rest (protobuf merges concatenated messages: the
//     scheduler decodes exactly the batch the collector produced, with the new time and seq);
//   - heartbeats: the part that changes only with the ranks (node, ranks, instance, highest
//     epoch) is encoded once per change, seq and time per heartbeat, concatenated likewise;
//   - timing: a node heartbeats from the moment its registration was answered (as an agent
//     does; waiting for all of a process's nodes let the first ones go LOST while 10,000
//     registered); one timer wheel per process (a 10 ms tick sends every node whose slot passed)
//     instead of two timers per node; when the process falls behind it catches up rather than
//     drifting, and how late each send was is reported, so a shortfall of the simulators is
//     never mistaken for the scheduler's.
// It samples the scheduler's heartbeat processing lag: for every `lagEvery`-th node, just
// before the node's next heartbeat is due (one interval after this one's slot, less
// LAG_READ_MARGIN_MS) it reads the time the scheduler recorded for the node (Redis, the
// heartbeat index), and that node's next heartbeat waits for the answer (it is sent late, and
// counted so, if the read takes longer than the margin). So the time read is this heartbeat's
// or one from before it: at or after its send, the lag is that time less the send, on time
// when under one interval; before its send, it was not recorded when read and counts as later
// than one interval (strict side: one recorded in the interval's last LAG_READ_MARGIN_MS counts
// late too). Until 2026-12-03 it read 0.9 of an interval after the send and counted a
// heartbeat recorded between 1.8 and 2 s as late; until 2026-12-04 the next heartbeat did not
// wait for the read, and a read that Redis (which serves the clients ready together in no
// fixed order) or a stalled simulator answered after the next heartbeat's time was recorded
// counted this one late although nothing said it was (1,000 agents: 17 of 3,000 such, each
// 1-11 ms after the next was due; 10,000 agents: 5 of 30,226, 220-236 ms after it).
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { AgentCommandReply, AgentRank, GpuDevice, NodeHeartbeat, RankEvent, RankPhase, RegisterNodeRequest, TelemetryBatch, Topology } from '@gantry/proto';
import { commandVerifyKeys, encode, subjects, verifyCommand } from '@gantry/bus';
import { keys } from '@gantry/store';
import { TelemetryCollector } from '../src/collectors/index.js';
import { SimulatedBackend } from '../src/device/index.js';
import { PeriodicWheel } from './periodic-wheel.js';

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

export interface FanInStats {
  type: 'stats';
  heartbeats: number;
  rankReports: number;
  ranks: number;
  telemetry: number;
  telemetryFailed: number;
  assigns: number;
  stops: number;
  lagMs: number[];
  lagMissed: number;
  /** Of lagMissed: the time read was from before the send (this heartbeat not recorded when read). */
  lagMissedUnrecorded: number;
  /** Of lagMissed, the rest: recorded, but one interval or more after the send (their lags, ms). */
  lagMissedLateMs: number[];
  /** How late the wheel sent each heartbeat after its slot (ms), since the last stats. */
  sendLateMs: number[];
  /** This process's CPU (ms), all of it. */
  cpuMs: number;
}

export type FanInMessage = { type: 'registered'; count: number } | FanInStats;

const args = JSON.parse(process.argv[2]!) as FanInWorkerArgs;
const commandKeys = commandVerifyKeys(readFileSync(args.publicKeyFile, 'utf8'));
const nc = await connect({ servers: args.natsUrl, maxReconnectAttempts: -1 });
const js = jetstream(nc);
const redis = new Redis(args.redisUrl, { enableAutoPipelining: true });

interface SimAgent {
  node: string;
  gpus: GpuDevice[];
  ranks: Map<string, AgentRank>;
  seq: number;
  highestEpoch: number;
  /** The heartbeat's fields but seq and time, encoded; dropped when the ranks or epoch change. */
  heartbeatBody: Uint8Array | undefined;
  /** The collector's batch but time and seq, encoded. */
  telemetryBody: Uint8Array;
  telemetrySeq: number;
  /** Heartbeats and telemetry start once its registration was answered, as an agent's do. */
  registered: boolean;
  /** A lag read of its last heartbeat is due or in flight: the next heartbeat waits for its answer (see the top). */
  reading?: boolean;
  /** The slot of a heartbeat held back by that read, sent when the read is answered. */
  heldSlot?: number;
}

async function simulate(i: number): Promise<SimAgent> {
  const node = `bench-${String(args.first + i).padStart(5, '0')}`;
  const backend = new SimulatedBackend({ model: { node }, seed: args.first + i, clock: 'wall' });
  const gpus = (await backend.fingerprint()).map((g) => GpuDevice.create({ index: g.index, uuid: g.uuid, model: g.model, memoryMib: g.memoryMiB, pciBusId: g.pciBusId }));
  const collector = new TelemetryCollector(backend, { node });
  await collector.collect(); // the first cycle has no rates; a steady-state batch does
  const batch = await collector.collect();
  const telemetrySeq = Number(batch.seq);
  const telemetryBody = encode(TelemetryBatch, { ...batch, instanceId: node, time: undefined, seq: 0 });
  return { node, gpus, ranks: new Map(), seq: 0, highestEpoch: 0, heartbeatBody: undefined, telemetryBody, telemetrySeq, registered: false };
}

const agents: SimAgent[] = [];
for (let i = 0; i < args.count; i++) agents.push(await simulate(i));

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
        if (cmd.epoch > a.highestEpoch) {
          a.highestEpoch = cmd.epoch;
          a.heartbeatBody = undefined;
        }
        const c = cmd.command;
        if (c?.$case === 'assign') {
          const key = `${c.assign.jobId}/${c.assign.attempt}/${c.assign.rank}`;
          if (!a.ranks.has(key)) {
            const r = AgentRank.create({ jobId: c.assign.jobId, attempt: c.assign.attempt, rank: c.assign.rank, pid: pid++, phase: RankPhase.RANK_PHASE_STARTED });
            a.ranks.set(key, r);
            a.heartbeatBody = undefined;
            assigns++;
            publishRankEvent(a, r, RankPhase.RANK_PHASE_STARTED);
          }
          reply = { ok: true, message: 'started' };
        } else if (c?.$case === 'stop') {
          const key = `${c.stop.jobId}/${c.stop.attempt}/${c.stop.rank}`;
          const r = a.ranks.get(key);
          if (r) {
            a.ranks.delete(key);
            a.heartbeatBody = undefined;
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

let heartbeats = 0;
let rankReports = 0;
let telemetry = 0;
let telemetryFailed = 0;
let lagMs: number[] = [];
let lagMissed = 0;
let lagMissedUnrecorded = 0;
let lagMissedLateMs: number[] = [];
let sendLateMs: number[] = [];
/** Heartbeats whose recorded time is read when the node's next heartbeat is due, oldest first. */
const lagChecks: { i: number; sent: number; due: number }[] = [];
/** How long before the next heartbeat is due the previous one's recorded time is read (see the top). */
const LAG_READ_MARGIN_MS = 50;
let lagHead = 0;

function heartbeat(i: number, late: number): void {
  const a = agents[i]!;
  if (!a.registered) return;
  if (a.reading) {
    a.heldSlot = tickNow - late;
    return;
  }
  const sent = Date.now();
  a.heartbeatBody ??= encode(NodeHeartbeat, NodeHeartbeat.create({ node: a.node, ranks: [...a.ranks.values()], instanceId: a.node, highestEpoch: a.highestEpoch }));
  const head = encode(NodeHeartbeat, NodeHeartbeat.create({ seq: ++a.seq, time: new Date(sent) }));
  nc.publish(subjects.agentHeartbeat(a.node), Buffer.concat([head, a.heartbeatBody]));
  heartbeats++;
  rankReports += a.ranks.size;
  sendLateMs.push(late);
  // The next heartbeat's slot: one interval after this one's (sent `late` after its slot).
  if (i % args.lagEvery === 0) {
    a.reading = true;
    lagChecks.push({ i, sent, due: tickNow - late + args.heartbeatMs });
  }
}

function checkLag(now: number): void {
  while (lagHead < lagChecks.length && lagChecks[lagHead]!.due - LAG_READ_MARGIN_MS <= now) {
    const { i, sent } = lagChecks[lagHead++]!;
    const a = agents[i]!;
    void redis.zscore(keys.heartbeats, a.node).then((score) => {
      const lag = Number(score) - sent;
      if (lag >= 0 && lag < args.heartbeatMs) lagMs.push(lag);
      else {
        lagMissed++;
        if (lag < 0) lagMissedUnrecorded++;
        else lagMissedLateMs.push(lag);
      }
    }, () => undefined).finally(() => {
      a.reading = false;
      const slot = a.heldSlot;
      a.heldSlot = undefined;
      // Tick time, as the wheel's sends are reckoned (tickNow is the tick's Date.now()).
      if (slot !== undefined) heartbeat(i, Math.max(0, Date.now() - slot));
    });
  }
  if (lagHead > 4096) {
    lagChecks.splice(0, lagHead);
    lagHead = 0;
  }
}

function report(i: number): void {
  const a = agents[i]!;
  if (!a.registered) return;
  const seq = ++a.telemetrySeq;
  const head = encode(TelemetryBatch, TelemetryBatch.create({ time: new Date(), seq }));
  js.publish(subjects.telemetry(a.node), Buffer.concat([head, a.telemetryBody]), { msgID: `${a.node}.${seq}`, timeout: 30_000 }).then(() => telemetry++, () => telemetryFailed++);
}

// Staggered: node i at offset i/count of each interval, as independent hosts would be.
const wheels = [new PeriodicWheel(agents.length, args.heartbeatMs, heartbeat)];
// telemetryMs 0: heartbeats only (what the scheduler spends on heartbeats alone).
if (args.telemetryMs > 0) wheels.push(new PeriodicWheel(agents.length, args.telemetryMs, (i) => report(i)));
const start = Date.now();
for (const w of wheels) w.start(start);
const TICK_MS = 10;
/** The time the wheels are advanced to: a heartbeat's slot is this less how late it is. */
let tickNow = 0;
const ticker = setInterval(() => {
  const now = (tickNow = Date.now());
  for (const w of wheels) w.advance(now);
  checkLag(now);
}, TICK_MS);

// Registrations in flight at once: a fleet of hosts starting together, not one after another.
const REGISTER_CONCURRENCY = 64;
async function register(i: number): Promise<void> {
  const a = agents[i]!;
  const leaf = Math.floor((args.first + i) / 32);
  const req = RegisterNodeRequest.create({ node: a.node, address: '127.0.0.1', gpus: a.gpus, topology: Topology.create({ leafSwitch: `leaf-${leaf}`, spine: `spine-${Math.floor(leaf / 16)}` }), agentVersion: 'bench', deviceBackend: 'simulated', instanceId: a.node });
  for (;;) {
    try {
      await nc.request(subjects.agentRegister(a.node), encode(RegisterNodeRequest, req), { timeout: 10_000 });
      a.registered = true;
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
let nextToRegister = 0;
await Promise.all(Array.from({ length: Math.min(REGISTER_CONCURRENCY, agents.length) }, async () => {
  while (nextToRegister < agents.length) await register(nextToRegister++);
}));
process.send?.({ type: 'registered', count: args.count } satisfies FanInMessage);

// The parent asks for counters (and resets the samples) at the start and end of the measurement.
process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') {
    const ranks = agents.reduce((n, a) => n + a.ranks.size, 0);
    const cpu = process.cpuUsage();
    process.send?.({ type: 'stats', heartbeats, rankReports, ranks, telemetry, telemetryFailed, assigns, stops, lagMs, lagMissed, lagMissedUnrecorded, lagMissedLateMs, sendLateMs, cpuMs: (cpu.user + cpu.system) / 1000 } satisfies FanInMessage);
    lagMs = [];
    lagMissed = 0;
    lagMissedUnrecorded = 0;
    lagMissedLateMs = [];
    sendLateMs = [];
  } else if (m.type === 'stop') {
    clearInterval(ticker);
    void Promise.all([nc.drain(), redis.quit()]).then(() => process.exit(0));
  }
});

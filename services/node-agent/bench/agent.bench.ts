// `pnpm bench:agent`:
//  1. CPU time and allocation of one collection cycle on the fixture data of a realistic host
//     (parsing, derivation, encoding; collect-cycle.ts);
//  2. the whole cycle of the real nvidia-smi backend, forks included, against a native
//     stand-in binary, fork per cycle against one long-running nvidia-smi loop (smi-cycle.ts);
//  3. the RSS of a real agent process (the installed bundle);
//  4. fan-in: N simulated agents (many per process, fan-in-worker.ts) speaking the agent's real
//     protocol to one real scheduler through a real nats-server and redis-server: registered,
//     running ranks of real jobs the scheduler placed and started on them, heartbeating with
//     those ranks at the default interval (2 s) and reporting telemetry every 10 s. Prints the
//     scheduler's heartbeat processing lag, telemetry ingest lag, CPU and RSS, and beside them
//     what the simulators achieved (heartbeats and batches per second against the target, how
//     late their sends were, their CPU), so that their shortfall is not taken for the
//     scheduler's. Each node's TelemetryBatch comes from the real collector over the simulated
//     backend, produced at start and re-published with a fresh time and seq (fan-in-worker.ts
//     says why): the scheduler ingests real batches; the agents' collection is measured in 1.
// Env: BENCH_AGENTS (1000), BENCH_WORKERS (one per 2,500 agents, at least 2), BENCH_HEARTBEAT_MS (2000), BENCH_TELEMETRY_MS (10000; 0: none),
//      BENCH_DURATION_MS (60000), BENCH_PLACE_WAIT_MS (300000: how long to wait for every job to run), BENCH_LAG_EVERY (10: sample every 10th node's heartbeats),
//      BENCH_SKIP_RSS (set: skip part 3), BENCH_FAN_IN_ONLY (set: skip parts 1-3),
//      BENCH_SCHEDULER_CPU_PROF (a directory: the scheduler writes a V8 CPU profile there when it
//      stops); part 2: BENCH_SMI_* (smi-cycle.ts).
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { JobStore } from '@gantry/store';
import { benchCollectCycle } from './collect-cycle.js';
import type { FanInMessage, FanInStats, FanInWorkerArgs } from './fan-in-worker.js';
import { benchSmiCycle, printSmiBench } from './smi-cycle.js';
import { startNats, startRedis } from '../../../test/harness/infra.js';
import { freePort } from '../../../test/harness/ports.js';
import { ManagedProcess } from '../../../test/harness/process.js';
import { writeCommandKeys } from '../../../deploy/local/bus-security.js';
import { REPO_ROOT, serviceCommand, simAgentEnv } from '../../../deploy/local/services.js';

const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const AGENTS = num('BENCH_AGENTS', 1000);
const WORKERS = num('BENCH_WORKERS', Math.max(2, Math.ceil(AGENTS / 2500)));
const HEARTBEAT = num('BENCH_HEARTBEAT_MS', 2000);
const TELEMETRY = num('BENCH_TELEMETRY_MS', 10_000);
const DURATION = num('BENCH_DURATION_MS', 60_000);
const LAG_EVERY = num('BENCH_LAG_EVERY', 10);

/** Busy and total jiffies of the whole machine (/proc/stat), for its CPU use over the window. */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return Number(m?.[1] ?? NaN);
}

/** Quantile from a Prometheus histogram's cumulative buckets (upper bound of the bucket), between two scrapes. */
function histogramQuantile(before: string, after: string, name: string, q: number): number {
  const buckets = (text: string) => new Map([...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\d+)`, 'gm'))].map((m) => [m[1]!, Number(m[2])]));
  const a = buckets(after);
  const b = buckets(before);
  const rows = [...a].map(([le, n]) => ({ le: le === '+Inf' ? Infinity : Number(le), n: n - (b.get(le) ?? 0) }));
  const total = rows.at(-1)?.n ?? 0;
  return rows.find((r) => r.n >= q * total)?.le ?? NaN;
}

const quantile = (v: number[], q: number) => (v.length === 0 ? NaN : [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(q * v.length))]!);
const load = () => loadavg().map((l) => l.toFixed(1)).join(' / ');

const FAN_IN_ONLY = Boolean(process.env.BENCH_FAN_IN_ONLY);
console.log(`machine: 2 cores shared with other work, load average ${load()}; node ${process.version}`);

// --- 1. one collection cycle ---------------------------------------------------------------
if (!FAN_IN_ONLY) {
  const cycle = benchCollectCycle(2000);
  console.log('== collection cycle (8 GPUs, 4 NFS mounts, 2 HCAs; fixture data; parsing, derivation and encoding only) ==');
  console.log(`  ${cycle.msPerCycle.toFixed(3)} ms/cycle wall, ${cycle.cpuMsPerCycle.toFixed(3)} ms/cycle CPU, ${(cycle.allocatedBytesPerCycle / 1024).toFixed(0)} KiB allocated/cycle, ${cycle.encodedBytes} B/batch   target < 5 ms: ${cycle.msPerCycle < 5 ? 'PASS' : 'FAIL'}`);

  // --- 2. the real backend's whole cycle --------------------------------------------------------
  const smiInterval = num('BENCH_SMI_INTERVAL_MS', 1000);
  printSmiBench(await benchSmiCycle(undefined, smiInterval), smiInterval);
}

const work = mkdtempSync(join(tmpdir(), 'gantry-bench-agent-'));
const commandKeys = writeCommandKeys(join(work, 'keys'));
const [nats, redis] = await Promise.all([startNats(join(work, 'nats')), startRedis(join(work, 'redis'))]);
const schedMetrics = await freePort();
const { command, args: schedulerArgs, cwd } = serviceCommand('scheduler');
const profDir = process.env.BENCH_SCHEDULER_CPU_PROF;
const args = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, ...schedulerArgs] : schedulerArgs;
const scheduler = new ManagedProcess({
  name: 'scheduler', command, args, cwd, logFile: join(work, 'scheduler.log'),
  env: {
    NATS_URL: nats.url, REDIS_URL: redis.url, METRICS_PORT: String(schedMetrics), SCHEDULER_GRPC_PORT: String(await freePort()),
    HEARTBEAT_INTERVAL_MS: String(HEARTBEAT), COMMAND_SIGNING_KEY_FILE: commandKeys.privateKeyFile, LOG_LEVEL: 'warn',
  },
  ready: async () => (await scrape(schedMetrics).catch(() => '')).includes('gantry_scheduler_leader 1'),
});
await scheduler.start();

// --- 3. a real agent process's memory, as installed (the esbuild bundle) --------------------
if (!process.env.BENCH_SKIP_RSS && !FAN_IN_ONLY) {
  execFileSync('pnpm', ['-s', 'build:agent'], { cwd: REPO_ROOT, stdio: 'inherit' });
  const agent = new ManagedProcess({
    name: 'agent', command: process.execPath, args: [join(REPO_ROOT, 'dist/gantry-agent.mjs')], cwd: REPO_ROOT, logFile: join(work, 'agent.log'),
    // As the systemd unit runs it (deploy/systemd/gantry-agent.service).
    env: { ...simAgentEnv('rss-probe', join(work, 'agent')), MALLOC_ARENA_MAX: '2', NATS_URL: nats.url, TELEMETRY_INTERVAL_MS: '1000', SCHEDULER_PUBLIC_KEY_FILE: commandKeys.publicKeyFile, LOG_LEVEL: 'warn' },
    ready: async () => true,
  });
  await agent.start();
  // Steady state, not start-up: sample every second from 10 s to 40 s and take the median.
  const samples: number[] = [];
  try {
    await new Promise((r) => setTimeout(r, 10_000));
    for (let i = 0; i < 30; i++) { samples.push(rssMiB(agent.pid!)); await new Promise((r) => setTimeout(r, 1_000)); }
  } catch {
    // The agent exited: say so with the error it printed, and go on to the fan-in.
    const log = readFileSync(join(work, 'agent.log'), 'utf8');
    console.log(`== agent process (dist/gantry-agent.mjs): EXITED before its RSS could be sampled: ${/^\w*Error: .*$/m.exec(log)?.[0] ?? 'see ' + join(work, 'agent.log')}   target < 100 MiB: FAIL`);
  }
  if (samples.length > 0) {
    samples.sort((a, b) => a - b);
    const agentRss = samples[Math.floor(samples.length / 2)]!;
    console.log(`== agent process (dist/gantry-agent.mjs, simulated 8-GPU host, 1 s telemetry, registered, 10-40 s) ==\n  RSS median ${agentRss.toFixed(1)} MiB, max ${samples.at(-1)!.toFixed(1)} MiB   target < 100 MiB: ${agentRss < 100 ? 'PASS' : 'FAIL'}`);
  }
  await agent.stop().catch(() => undefined);
}

// --- 4. fan-in -----------------------------------------------------------------------------
console.log(`== fan-in: ${AGENTS} simulated agents in ${WORKERS} processes (real messages: register, signed commands, rank events, heartbeats with ranks every ${HEARTBEAT / 1000} s, ${TELEMETRY > 0 ? `telemetry every ${TELEMETRY / 1000} s` : 'no telemetry'}), one scheduler, ${DURATION / 1000} s ==`);
const per = Math.ceil(AGENTS / WORKERS);
const workers: ChildProcess[] = [];
const pendingStats = new Map<ChildProcess, (m: FanInStats) => void>();
let registered = 0;
const t0 = Date.now();
await Promise.all(Array.from({ length: WORKERS }, (_, w) => new Promise<void>((resolve, reject) => {
  const a: FanInWorkerArgs = { natsUrl: nats.url, redisUrl: redis.url, publicKeyFile: commandKeys.publicKeyFile, first: w * per, count: Math.min(per, AGENTS - w * per), heartbeatMs: HEARTBEAT, telemetryMs: TELEMETRY, lagEvery: LAG_EVERY };
  const child = fork(join(import.meta.dirname, 'fan-in-worker.ts'), [JSON.stringify(a)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  workers.push(child);
  child.on('message', (m: FanInMessage) => {
    if (m.type === 'registered') {
      registered += m.count;
      resolve();
    } else if (m.type === 'stats') {
      pendingStats.get(child)?.(m);
    }
  });
  child.on('exit', (code) => (code === 0 ? undefined : reject(new Error(`fan-in worker ${w} exited ${code}`))));
})));
console.log(`  ${registered} nodes registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

// Work for every node, through the job store the gateway writes to: per 8 nodes one 4-node
// gang of 8 GPUs per node (gangs first, so they find whole nodes) and 32 one-GPU jobs.
const redisClient = new Redis(redis.url, { enableAutoPipelining: true });
const jobs = new JobStore(redisClient);
const gangs = Math.floor(AGENTS / 8);
const singles = Math.floor(AGENTS / 8) * 32;
const submitted = Date.now();
const specs = [
  ...Array.from({ length: gangs }, (_, k) => ({ id: `fan-gang-${k}`, nodes: 4, gpusPerNode: 8 })),
  ...Array.from({ length: singles }, (_, k) => ({ id: `fan-one-${k}`, nodes: 1, gpusPerNode: 1 })),
];
for (let i = 0; i < specs.length; i += 500) {
  await Promise.all(specs.slice(i, i + 500).map((s, k) => jobs.submit(Job.create({ id: s.id, createdAt: new Date(submitted + i + k), spec: JobSpec.create({ tenant: 'bench', nodes: s.nodes, gpusPerNode: s.gpusPerNode, command: ['sleep', 'infinity'] }) }), '')));
}
const wantRanks = gangs * 4 + singles;
let running = 0;
for (const deadline = Date.now() + num('BENCH_PLACE_WAIT_MS', 300_000); Date.now() < deadline; await new Promise((r) => setTimeout(r, 2_000))) {
  running = (await jobs.idsInState(JobState.JOB_STATE_RUNNING)).length;
  if (running === specs.length) break;
}
console.log(`  ${specs.length} jobs (${gangs} 4-node gangs, ${singles} one-GPU jobs; ${wantRanks} ranks) submitted; ${running} RUNNING after ${((Date.now() - submitted) / 1000).toFixed(1)} s (placed, dispatched as signed commands, started by rank events)`);

const stats = () => Promise.all(workers.map((w) => new Promise<FanInStats>((resolve) => {
  pendingStats.set(w, resolve);
  w.send({ type: 'stats' });
})));
const sum = (s: FanInStats[], k: 'heartbeats' | 'rankReports' | 'ranks' | 'telemetry' | 'telemetryFailed' | 'lagMissed' | 'lagMissedUnrecorded' | 'cpuMs') => s.reduce((n, x) => n + x[k], 0);
// One telemetry interval (without telemetry, 5 heartbeat intervals) to settle after the start-up burst, then measure.
await new Promise((r) => setTimeout(r, TELEMETRY > 0 ? TELEMETRY : 5 * HEARTBEAT));
const before = await scrape(schedMetrics);
const mc0 = machineCpu();
const s0 = await stats();
const m0 = Date.now();
// The intake thread reports its own heap and event-loop delay every 5 s: sampled through the window.
const intake = { delayMaxSec: 0, delayP99Sec: [] as number[], heapMiB: 0 };
while (Date.now() - m0 < DURATION) {
  await new Promise((r) => setTimeout(r, Math.min(5_000, DURATION - (Date.now() - m0))));
  const text = await scrape(schedMetrics).catch(() => '');
  const delay = (q: string) => Number(new RegExp(`^gantry_intake_thread_event_loop_delay_seconds\\{quantile="${q}"[^}]*\\} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  if (Number.isFinite(delay('max'))) intake.delayMaxSec = Math.max(intake.delayMaxSec, delay('max'));
  if (Number.isFinite(delay('p99'))) intake.delayP99Sec.push(delay('p99'));
  const heap = metric(text, 'gantry_intake_thread_heap_used_bytes');
  if (Number.isFinite(heap)) intake.heapMiB = Math.max(intake.heapMiB, heap / 2 ** 20);
}
const s1 = await stats();
const after = await scrape(schedMetrics);
const mc1 = machineCpu();
const wall = (Date.now() - m0) / 1000;
const cpu = metric(after, 'gantry_process_cpu_seconds_total') - metric(before, 'gantry_process_cpu_seconds_total');
const stored = metric(after, 'gantry_telemetry_batches_total') - metric(before, 'gantry_telemetry_batches_total');
const heartbeats = sum(s1, 'heartbeats') - sum(s0, 'heartbeats');
const rankReports = sum(s1, 'rankReports') - sum(s0, 'rankReports');
const lag = s1.flatMap((s) => s.lagMs);
const missed = sum(s1, 'lagMissed');
const published = sum(s1, 'telemetry') - sum(s0, 'telemetry');
const failed = sum(s1, 'telemetryFailed') - sum(s0, 'telemetryFailed');
const workerCpu = (sum(s1, 'cpuMs') - sum(s0, 'cpuMs')) / 1000;
const p99 = quantile(lag, 0.99);
const late = s1.flatMap((s) => s.sendLateMs);
const cores = cpus().length;
console.log(`  simulators: heartbeats sent ${(heartbeats / wall).toFixed(0)}/s of ${(AGENTS / (HEARTBEAT / 1000)).toFixed(0)}/s wanted (${heartbeats} in ${wall.toFixed(0)} s; sent after their slot p50 ${quantile(late, 0.5).toFixed(0)} ms, p99 ${quantile(late, 0.99).toFixed(0)} ms, max ${late.reduce((m, v) => Math.max(m, v), 0).toFixed(0)} ms), telemetry batches ${(published / wall).toFixed(0)}/s of ${TELEMETRY > 0 ? (AGENTS / (TELEMETRY / 1000)).toFixed(0) : 0}/s wanted; their ${WORKERS} processes used ${((100 * workerCpu) / wall).toFixed(1)} % of a core`);
console.log(`  ranks running on the agents: ${sum(s1, 'ranks')}; ${(rankReports / Math.max(1, heartbeats)).toFixed(1)} ranks per heartbeat`);
console.log(`  scheduler heartbeat processing lag (sent -> recorded in Redis), every ${LAG_EVERY}th node's heartbeats: ${lag.length} of ${lag.length + missed} recorded before the node's next heartbeat was due (${HEARTBEAT / 1000} s after this one's slot, read 50 ms before; p50 ${quantile(lag, 0.5)} ms, p99 ${p99} ms, max ${lag.reduce((m, v) => Math.max(m, v), 0)} ms of those), ${missed} later or never   target: all within one interval (${HEARTBEAT / 1000} s): ${missed === 0 && p99 < HEARTBEAT ? 'PASS' : 'FAIL'}`);
if (missed > 0) {
  const lateLags = s1.flatMap((s) => s.lagMissedLateMs).sort((a, b) => a - b);
  console.log(`    of the ${missed}: ${sum(s1, 'lagMissedUnrecorded')} not recorded when read (50 ms before the next was due), ${lateLags.length} recorded one interval or more after their send (${lateLags.length > 0 ? `${lateLags[0]}..${lateLags.at(-1)} ms` : '-'})`);
}
const ingest = (q: number) => {
  const v = histogramQuantile(before, after, 'gantry_telemetry_ingest_lag_seconds', q);
  return Number.isFinite(v) ? `<= ${v} s` : 'beyond the histogram\'s largest bucket';
};
console.log(`  telemetry batches published ${published} (failed ${failed}), stored by the scheduler ${stored} (${(stored / wall).toFixed(0)}/s, backlog from before the window included); ingest lag (collection -> Redis) p50 ${ingest(0.5)}, p99 ${ingest(0.99)}`);
// Where a late heartbeat waited: the scheduler's event loop (prom-client's monitorEventLoopDelay,
// reset at every scrape, so these are the window's), and the part after the heartbeat reached it.
const eld = (q: string) => (1000 * metric(after, `gantry_nodejs_eventloop_lag_${q}_seconds`)).toFixed(0);
const recorded = (q: number) => {
  const v = histogramQuantile(before, after, 'gantry_heartbeat_record_lag_seconds', q);
  return Number.isFinite(v) ? `<= ${1000 * v} ms` : 'beyond 5 s';
};
console.log(`  scheduler event-loop delay over the window p50 ${eld('p50')} ms, p99 ${eld('p99')} ms, max ${eld('max')} ms; heartbeat from its arrival at the scheduler to recorded p50 ${recorded(0.5)}, p99 ${recorded(0.99)}`);
// Heartbeats the scheduler refused over the window (every reason): a heartbeat counted late that was never recorded shows here, if the scheduler dropped it.
const droppedHeartbeats = (text: string) => [...text.matchAll(/^gantry_agent_messages_dropped_total\{([^}]*)\} ([0-9.e+-]+)$/gm)].filter((m) => m[1]!.includes('kind="heartbeat"')).reduce((n, m) => n + Number(m[2]), 0);
console.log(`  heartbeats the scheduler dropped over the window (any reason): ${droppedHeartbeats(after) - droppedHeartbeats(before)}`);
console.log(`  agent intake thread (heartbeats, telemetry): event-loop delay p99 of its 5 s reports ${(1000 * quantile(intake.delayP99Sec, 0.5)).toFixed(0)} ms median, ${(1000 * intake.delayP99Sec.reduce((m, v) => Math.max(m, v), 0)).toFixed(0)} ms highest; max ${(1000 * intake.delayMaxSec).toFixed(0)} ms; heap used up to ${intake.heapMiB.toFixed(0)} MiB`);
const schedulerLog = readFileSync(join(work, 'scheduler.log'), 'utf8');
const leaseLost = (schedulerLog.match(/lost leadership/g) ?? []).length;
const leaseLapsed = (schedulerLog.match(/lease lapsed before its renewal/g) ?? []).length;
console.log(`  scheduler CPU ${((100 * cpu) / wall).toFixed(1)} % of one core over ${wall.toFixed(0)} s, RSS ${rssMiB(scheduler.pid!).toFixed(0)} MiB; leader lease lost ${leaseLost} times since start, lapsed and taken back ${leaseLapsed} times; the machine's ${cores} cores ${((100 * (mc1.busy - mc0.busy)) / (mc1.total - mc0.total)).toFixed(0)} % busy (everything on it); load average ${load()}`);

for (const w of workers) w.send({ type: 'stop' });
await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(undefined) : w.on('exit', r)))));
await redisClient.quit();
await scheduler.stop();
await Promise.all([nats.stop(), redis.stop()]);

// `pnpm bench:scheduler` (part 2): the real scheduling pass, SchedulingLoop.runOnce, against a
// real Redis and NATS: snapshot from Redis, plan, commit each placement with its Lua compare-and-set (job revision, every GPU claimed, node READY), and
// the outbox event. Prints committed placements per second (target, issue 14: >= 5,000 jobs/s)
// and the CPU per placement of this process (and of its main thread) and of redis-server.
// Steady state by default: the leader has placed BENCH_COMMIT_WARMUP jobs (1,000) before the
// timed burst of BENCH_COMMIT_JOBS arrives, so its code is compiled (a fresh process spent
// about as much CPU compiling and collecting on V8's helper threads as on the pass itself)
// and its copies of the queue and the nodes (JobCache, NodeStore's parsed records) are
// loaded, as they are in steady state, where jobs are read once when they change. The burst
// is placed by as many passes as the loop takes (quick passes of SCHEDULER_QUEUE_DEPTH's
// default, growing while they place every job they decide). BENCH_COMMIT_WARMUP=0 times the
// first pass of a fresh process (one full pass over the whole burst); BENCH_COMMIT_COLD=1 a
// new leader's first pass, which reads and parses every job and node record too.
// The assignments of the committed placements go over NATS to simulated agents in another
// process (simulated-agents.ts), which acknowledge each; the pass does not wait for them, the
// timing does: it ends once every assignment is acknowledged, so that it counts this process's
// handling of the replies too.
// Env: BENCH_COMMIT_NODES (4096), BENCH_COMMIT_JOBS (4000), BENCH_COMMIT_WARMUP (1000), BENCH_COMMIT_COLD, BENCH_COMMIT_PROFILE=FILE (a V8 CPU
// profile of the passes alone, without the setup, for Chrome DevTools or speedscope).
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { Session } from 'node:inspector/promises';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { jetstream } from '@nats-io/jetstream';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { GpuDevice, Job, JobSpec, JobState, Node, NodeState, Topology } from '@gantry/proto';
import { connectNats } from '@gantry/service-kit';
import { JobStore, LeaderLease, NodeStore } from '@gantry/store';
import { startNats, startRedis } from '../../../test/harness/infra.js';
import { AgentCommander } from '../src/agents/commands.js';
import { SchedulingLoop } from '../src/scheduling-loop.js';
import { JobCache } from '../src/jobs/job-cache.js';
import { RecoveryController } from '../src/recovery/controller.js';
import { ResumeSource } from '../src/recovery/resume.js';
import type { SchedulerContext } from '../src/context.js';

const NODES = Number(process.env.BENCH_COMMIT_NODES ?? 4096);
const JOBS = Number(process.env.BENCH_COMMIT_JOBS ?? 4000);
const cold = Boolean(process.env.BENCH_COMMIT_COLD);
const WARMUP = cold ? 0 : Number(process.env.BENCH_COMMIT_WARMUP ?? 1000);

const work = mkdtempSync(join(tmpdir(), 'gantry-bench-commit-'));
const [natsServer, redisServer] = await Promise.all([startNats(join(work, 'nats')), startRedis(join(work, 'redis'))]);
const log = pino({ level: 'silent' });
const agents = spawn(process.execPath, ['--import', 'tsx', new URL('./simulated-agents.ts', import.meta.url).pathname, natsServer.url], { stdio: ['pipe', 'pipe', 'inherit'] });
const agentLines = createInterface({ input: agents.stdout })[Symbol.asyncIterator]();
if ((await agentLines.next()).value !== 'ready') throw new Error('the simulated agents did not start');
const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
const nc = await connectNats(natsServer.url, 'bench', log);
const lease = new LeaderLease(redis, 'bench', 60_000);
const epoch = await lease.tryAcquire();
// As the scheduler wires them (server.ts): the job copy takes the records the pass commits.
const jobs = new JobStore(redis, { onCommitted: (rec) => jobCache.committed(rec) });
const jobCache = new JobCache(jobs);
const nodes = new NodeStore(redis);

const t0 = performance.now();
await Promise.all(Array.from({ length: NODES }, (_, i) => {
  const leaf = Math.floor(i / 32);
  const node = Node.create({
    name: `n${String(i).padStart(5, '0')}`, state: NodeState.NODE_STATE_READY, address: '127.0.0.1',
    gpus: Array.from({ length: 8 }, (_, g) => GpuDevice.create({ index: g, model: i % 2 ? 'NVIDIA H100 80GB HBM3' : 'NVIDIA H200', uuid: `GPU-${i}-${g}` })),
    topology: Topology.create({ leafSwitch: `leaf-${leaf}`, spine: `spine-${Math.floor(leaf / 16)}` }),
  });
  return nodes.commit({ prev: undefined, next: node, reason: 'bench', epoch, heartbeatMs: Date.now() });
}));
const sizes = [1, 2, 4, 8, 8, 8];
/** `count` pending jobs of mixed sizes, one in 100 a 4-node gang, created from `createdMs` on. */
async function submitJobs(prefix: string, count: number, createdMs: number): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, count - i) }, (_, k) => {
      const n = i + k;
      const multi = n % 100 === 0;
      return jobs.submit(Job.create({ id: `${prefix}${n}`, createdAt: new Date(createdMs + n), spec: JobSpec.create({ tenant: `t${n % 3}`, nodes: multi ? 4 : 1, gpusPerNode: multi ? 8 : sizes[n % sizes.length]!, command: ['true'] }) }), '');
    }));
  }
}
console.log(`== Redis-committed scheduling (${NODES} nodes x 8 GPUs in Redis, a burst of ${JOBS} pending jobs${WARMUP > 0 ? ` after ${WARMUP} placed by the leader` : ''}) ==`);
console.log(`  setup ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const commander = new AgentCommander(nc, log, 60_000, () => epoch, generateKeyPairSync('ed25519').privateKey);
// Each assignment's outcome, to wait for its acknowledgement at the end of the timing.
const acks: Promise<boolean>[] = [];
const assign = commander.assign.bind(commander);
commander.assign = (node, a, force) => {
  const ack = assign(node, a, force);
  acks.push(ack);
  return ack;
};
const ctx: SchedulerContext = {
  log, nc, js: jetstream(nc), redis, jobs, jobCache, nodes, metrics: new Registry(),
  // A throwaway signing key: the simulated agents do not verify it.
  commander,
  settings: { heartbeatTimeoutMs: 60_000, heartbeatIntervalMs: 10_000, cycleIntervalMs: 1_000, stopGraceSeconds: 10 },
  epoch: () => epoch,
  kick: () => undefined,
  recovered: () => undefined,
  agentEpoch: () => undefined,
};
// No job here has an earlier attempt, so the checkpoint service is never asked.
const loop = new SchedulingLoop(ctx, new RecoveryController(ctx), new ResumeSource('127.0.0.1:1'));
/**
 * This process's main thread's time on CPU (ms), from Linux's schedstat; undefined elsewhere.
 * The process's figure adds V8's helper threads (garbage collection, compilation), whose share
 * moves more from run to run.
 */
function mainThreadCpuMs(): number | undefined {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return undefined;
  }
}
const redisCpu = async (): Promise<number> => {
  const info = await redis.info('cpu');
  const f = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return f('used_cpu_user') + f('used_cpu_sys');
};
if (WARMUP > 0) {
  // Queued before the burst (created an hour earlier), placed by the leader's first pass.
  await submitJobs('j-warm-', WARMUP, Date.now() - 3_600_000);
  await loop.runOnce();
}
const placedBefore = (await jobs.idsInState(JobState.JOB_STATE_SCHEDULED)).length;
await submitJobs('j-bench-', JOBS, Date.now());
if (!cold) {
  await ctx.jobCache.inStates([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_SCHEDULED, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_PREEMPTED, JobState.JOB_STATE_RECOVERING]);
  await nodes.list();
}
// The setup's garbage (the submissions and node records made in this process, and the loading
// above) is collected before the timing: a scheduler's heap does not hold it, and its old
// generation's marking otherwise ran during the pass, about a quarter of the CPU measured.
setFlagsFromString('--expose-gc');
(runInNewContext('gc') as () => void)();
const profiler = process.env.BENCH_COMMIT_PROFILE ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}
const redisCpu0 = await redisCpu();
const cpu0 = process.cpuUsage();
const main0 = mainThreadCpuMs();
const start = performance.now();
let passes = 0;
for (;;) {
  const before = (await jobs.idsInState(JobState.JOB_STATE_PENDING)).length;
  await loop.runOnce();
  passes++;
  const after = (await jobs.idsInState(JobState.JOB_STATE_PENDING)).length;
  if (after === before || after === 0) break;
}
const acked = (await Promise.all(acks)).filter(Boolean).length;
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
const mainMs = main0 === undefined ? undefined : mainThreadCpuMs()! - main0;
if (profiler) writeFileSync(process.env.BENCH_COMMIT_PROFILE!, JSON.stringify((await profiler.post('Profiler.stop')).profile));
const schedulerCpuMs = (cpu.user + cpu.system) / 1000;
const redisCpuMs = ((await redisCpu()) - redisCpu0) * 1000;
const placed = (await jobs.idsInState(JobState.JOB_STATE_SCHEDULED)).length - placedBefore;
const rate = placed / seconds;
console.log(`  ${cold ? 'cold: a new leader\'s first pass, reading every job and node' : WARMUP > 0 ? 'steady state: the leader\'s code compiled and its copies of jobs and nodes loaded' : 'a fresh process\'s first pass, its copies of jobs and nodes loaded'}`);
console.log(`  ${placed} jobs placed and committed in ${passes} passes, ${seconds.toFixed(2)} s: ${rate.toFixed(0)} jobs/s   target >= 5,000 jobs/s: ${rate >= 5000 ? 'PASS' : 'FAIL'}`);
// Wall time on a shared machine moves with the load; CPU per placement does not (much).
console.log(`  CPU per placement: scheduler process ${(schedulerCpuMs * 1000 / placed).toFixed(0)} us${mainMs === undefined ? '' : ` (main thread ${(mainMs * 1000 / placed).toFixed(0)} us)`}, redis-server ${(redisCpuMs * 1000 / placed).toFixed(0)} us (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);

// Every GPU claimed at most once: the allocation hashes hold exactly the GPUs of placed jobs.
let claimed = 0;
for (const rec of await nodes.list()) claimed += rec.allocations.length;
const wanted = (await jobs.getMany(await jobs.idsInState(JobState.JOB_STATE_SCHEDULED))).reduce((n, r) => n + r.job.attempts[0]!.placement.reduce((m, p) => m + p.gpuIndices.length, 0), 0);
console.log(`  GPUs claimed in Redis ${claimed}, GPUs in committed placements ${wanted}: ${claimed === wanted ? 'consistent' : 'MISMATCH'}`);

agents.stdin.end();
const agentsReceived = ((await agentLines.next()).value as string).replace('received ', '');
console.log(`  assignments sent ${acks.length}, received by the simulated agents ${agentsReceived}, acknowledged ${acked}`);
await once(agents, 'exit');
await nc.drain().catch(() => undefined);
redis.disconnect();
await Promise.all([natsServer.stop(), redisServer.stop()]);

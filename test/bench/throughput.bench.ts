// `pnpm bench:throughput` (issue 14): the control plane's cost per trivial job on the local
// stack's shape — one scheduler, the gateway, the checkpoint service and 4 simulated agents of
// 8 GPUs, real nats-server and redis-server, every service a process of its own — as a user
// of a batch system would measure it on a control plane that has been running:
//   - warm-up: BENCH_TP_WARMUP (1,000) jobs submitted as below and run until SUCCEEDED before
//     anything is measured. The services are Node processes: in their first seconds under load
//     V8 is still compiling their hot paths (the scheduler's V8 compiler and GC threads took
//     about 6 % of the machine in a `perf` profile of a cold run), which a cluster's scheduler
//     pays once after a start, not per job. The warm-up's own submission rate is printed
//     (cold, not judged);
//   - submissions/s: BENCH_TP_JOBS (2,000) 1-GPU `true` jobs submitted through the gateway
//     with 64 calls in flight;
//   - end-to-end jobs/s: from the first submit until every job SUCCEEDED;
//   - control-plane CPU per job: user+system CPU of every Gantry process over that window
//     (and of the rank processes the agents ran, shown apart), divided by the jobs;
//   - batched submissions/s: once those jobs SUCCEEDED, another BENCH_TP_JOBS jobs submitted
//     with SubmitJobs in batches of 100, 4 batches in flight (then awaited until SUCCEEDED,
//     outside every other figure's window);
//   - interactive submit-to-done: BENCH_TP_INTERACTIVE (30) jobs one after another, each
//     submitted and watched (WatchJob) until it SUCCEEDED, on an idle cluster.
// Agents heartbeat at the default interval (2 s). The stack's files (the agents' rank folders
// among them) live under the OS temporary folder (TMPDIR); the file system there and what
// creating a file costs on it are printed (fs-probe.ts). Targets (issue 14): <= 8 ms CPU per job,
// >= 400 submissions/s (per call and batched), >= 60 jobs/s, submit-to-done p50 <= 50 ms.
// BENCH_TP_PROFILE=DIR writes a V8 CPU profile of every service process into DIR (cpu-profile-hook.mjs).
// Agents fork their ranks through gantry-spawn when dist/gantry-spawn is built (counted as the
// agents' CPU); BENCH_TP_SPAWNER=off makes them fork the ranks themselves.
// BENCH_TP_AGENT=bundle runs the agents as installed on a GPU host: the esbuild bundle
// (`pnpm build:agent`, built first) under plain node, instead of the sources under tsx.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { JobState } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { keys } from '@gantry/store';
import { TestStack } from '../harness/stack.js';
import { describeFilesystem, fileCreateCostUs } from './fs-probe.js';
import type { ManagedProcess } from '../harness/process.js';
import { REPO_ROOT } from '../../deploy/local/services.js';

/** A count from the environment: a whole number >= `min`, or a clear error naming the variable. */
function countFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${raw}: expected a whole number >= ${min}`);
  return n;
}
const JOBS = countFromEnv('BENCH_TP_JOBS', 2000, 1);
const WARMUP = countFromEnv('BENCH_TP_WARMUP', 1000, 0);
const INTERACTIVE = countFromEnv('BENCH_TP_INTERACTIVE', 30, 1);
const IN_FLIGHT = 64;
const BATCH = 100;
const BATCHES_IN_FLIGHT = 4;
const TICK = 100; // USER_HZ: /proc/<pid>/stat counts CPU in ticks of 10 ms on Linux

/** CPU seconds of a process (own, and of its children it has waited for) from /proc. */
type Cpu = { own: number; sys: number; children: number };

function cpuOf(pid: number | undefined): Cpu {
  if (!pid) return { own: 0, sys: 0, children: 0 };
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    return { own: (Number(f[11]) + Number(f[12])) / TICK, sys: Number(f[12]) / TICK, children: (Number(f[13]) + Number(f[14])) / TICK };
  } catch {
    return { own: 0, sys: 0, children: 0 };
  }
}

/** Each agent's rank spawner (gantry-spawn), its child: its CPU is the agent's, its children are the ranks. */
function spawnersOf(agents: ManagedProcess[]): number[] {
  const pids = new Set(agents.map((a) => a.pid));
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    const pid = Number(d);
    if (!pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (pids.has(ppid) && stat.includes('(gantry-spawn)')) out.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function sample(procs: Record<string, (number | undefined)[]>): Record<string, Cpu> {
  const out: Record<string, Cpu> = {};
  for (const [kind, list] of Object.entries(procs)) {
    out[kind] = list.map((pid) => cpuOf(pid)).reduce((a, b) => ({ own: a.own + b.own, sys: a.sys + b.sys, children: a.children + b.children }), { own: 0, sys: 0, children: 0 });
  }
  return out;
}

const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]!;
const load = loadavg()[0]!;
const profile = process.env.BENCH_TP_PROFILE
  ? { NODE_OPTIONS: `--import ${new URL('./cpu-profile-hook.mjs', import.meta.url).pathname}`, GANTRY_CPU_PROFILE_DIR: process.env.BENCH_TP_PROFILE }
  : undefined;
const agentMode = process.env.BENCH_TP_AGENT ?? 'sources';
if (agentMode !== 'sources' && agentMode !== 'bundle') throw new Error(`BENCH_TP_AGENT=${agentMode}: expected sources or bundle`);
let agentCommand: { command: string; args: string[] } | undefined;
if (agentMode === 'bundle') {
  execFileSync('pnpm', ['-s', 'build:agent'], { cwd: REPO_ROOT, stdio: 'inherit' });
  agentCommand = { command: process.execPath, args: [join(REPO_ROOT, 'dist', 'gantry-agent.mjs')] };
}
// Services log at their shipped default level (info), not the test harness's debug: what an
// operator runs is what is measured (BENCH_TP_LOG_LEVEL to compare).
const serviceEnv = { LOG_LEVEL: process.env.BENCH_TP_LOG_LEVEL ?? 'info', ...profile };
// Agents fork ranks through gantry-spawn when it is built (pnpm build:spawn), as installed;
// BENCH_TP_SPAWNER=off makes them fork ranks themselves, to compare.
const agentEnv = { ...serviceEnv, ...(process.env.BENCH_TP_SPAWNER === 'off' && { GANTRY_SPAWN_HELPER: 'off' }) };
const stack = await new TestStack({
  agents: 4, schedulers: 1, heartbeatIntervalMs: 2_000, heartbeatTimeoutMs: 10_000, agentCommand,
  env: { scheduler: serviceEnv, gateway: serviceEnv, checkpoint: serviceEnv, 'node-agent': agentEnv },
}).start();
const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 60_000, configFile: false });
/** Submits `n` jobs named `${prefix}-<i>` with IN_FLIGHT SubmitJob calls at a time; returns the seconds it took. */
async function submitPerCall(prefix: string, n: number): Promise<number> {
  const t = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    for (let i = next++; i < n; i = next++) {
      await client.submitJob({ name: `${prefix}-${i}`, tenant: 'bench', nodes: 1, gpusPerNode: 1, command: ['true'], workingDir: '' }, { idempotencyKey: `${prefix}-${i}` });
    }
  }));
  return (performance.now() - t) / 1000;
}

/** Waits until `n` jobs in all have SUCCEEDED; throws if any FAILED. */
async function succeeded(n: number): Promise<void> {
  for (;;) {
    const done = await stack.redis.zcard(keys.jobsInState('SUCCEEDED'));
    const failed = await stack.redis.zcard(keys.jobsInState('FAILED'));
    if (failed > 0) throw new Error(`${failed} trivial jobs FAILED`);
    if (done >= n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Submits BENCH_TP_JOBS more jobs with SubmitJobs (batches of BATCH, BATCHES_IN_FLIGHT at a
 * time) on the cluster the first phase left idle; returns submissions/s, then waits until
 * they SUCCEEDED too, so the interactive figure still runs on an idle cluster.
 */
async function submitInBatches(): Promise<number> {
  const t = performance.now();
  let nextBatch = 0;
  const batches = Math.ceil(JOBS / BATCH);
  await Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, async () => {
    for (let b = nextBatch++; b < batches; b = nextBatch++) {
      const ids = Array.from({ length: Math.min(BATCH, JOBS - b * BATCH) }, (_, k) => b * BATCH + k);
      const res = await client.submitJobs(
        ids.map((i) => ({ name: `tp-b-${i}`, tenant: 'bench', nodes: 1, gpusPerNode: 1, command: ['true'], workingDir: '' })),
        { idempotencyKeys: ids.map((i) => `tp-b-${i}`) },
      );
      const refused = res.find((r) => !r.ok);
      if (refused && !refused.ok) throw new Error(`a batched submission was refused: ${refused.error.message}`);
    }
  }));
  const rate = JOBS / ((performance.now() - t) / 1000);
  await succeeded(WARMUP + 2 * JOBS);
  return rate;
}

try {
  const filesystem = describeFilesystem(stack.workDir);
  const createUs = fileCreateCostUs(stack.workDir);
  const coldRate = WARMUP > 0 ? WARMUP / (await submitPerCall('tp-w', WARMUP)) : undefined;
  await succeeded(WARMUP);
  const spawners = spawnersOf(stack.agents);
  const pids = (list: ManagedProcess[]) => list.map((p) => p.pid);
  const procs = { scheduler: pids(stack.schedulers), gateway: pids([stack.gateway]), checkpoint: pids([stack.checkpoint]), agents: [...pids(stack.agents), ...spawners] };
  const before = sample(procs);
  const t0 = performance.now();
  const submitSec = await submitPerCall('tp', JOBS);
  await succeeded(WARMUP + JOBS);
  const e2eSec = (performance.now() - t0) / 1000;
  const after = sample(procs);
  const perJob = (kind: string) => ((after[kind]!.own - before[kind]!.own) * 1000) / JOBS;
  // The kernel's share (fork, file system, sockets) apart: it moves with other levers than the code's.
  const sysPerJob = (kind: string) => ((after[kind]!.sys - before[kind]!.sys) * 1000) / JOBS;
  const controlPlane = ['scheduler', 'gateway', 'checkpoint', 'agents'].reduce((s, k) => s + perJob(k), 0);
  const ranks = ((after.agents!.children - before.agents!.children) * 1000) / JOBS;

  // Batched: the same jobs again through SubmitJobs, measured apart from the figures above.
  const batchRate = await submitInBatches();


  // Interactive: one job at a time on the now idle cluster, submit + WatchJob to SUCCEEDED.
  const latencies: number[] = [];
  for (let i = 0; i < INTERACTIVE; i++) {
    const t = performance.now();
    const { job } = await client.submitJob({ name: `tp-i-${i}`, tenant: 'bench', nodes: 1, gpusPerNode: 1, command: ['true'], workingDir: '' });
    for await (const ev of client.watchJob(job!.id)) {
      if (ev.job?.state === JobState.JOB_STATE_SUCCEEDED) break;
      if (ev.job && [JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED].includes(ev.job.state)) throw new Error(`interactive job ${job!.id} ended ${ev.job.state}`);
    }
    latencies.push(performance.now() - t);
  }

  const rate = JOBS / submitSec;
  const jobsPerSec = JOBS / e2eSec;
  const p50 = pct(latencies, 0.5);
  console.log(`Gantry control plane, ${JOBS.toLocaleString('en-US')} trivial 1-GPU jobs on 4 simulated agents x 8 GPUs (${agentMode === 'bundle' ? 'agents run as the bundle dist/gantry-agent.mjs, the other services' : 'services run'} under the tsx loader)`);
  console.log(spawners.length > 0 ? `ranks forked by ${spawners.length} gantry-spawn processes (their CPU counted as the agents')` : 'ranks forked by the agents themselves (no gantry-spawn)');
  console.log(`services log at ${serviceEnv.LOG_LEVEL}; node ${process.version}; load average ${load.toFixed(1)} on ${availableParallelism()} CPUs when the run began`);
  console.log(`stack files under ${stack.workDir}, ${filesystem}: creating a file there costs ${createUs.toFixed(0)} us of CPU (a rank creates 4)`);
  console.log(WARMUP > 0
    ? `measured after a warm-up of ${WARMUP.toLocaleString('en-US')} jobs run to the end; the warm-up's own rate, on services just started (not judged): ${coldRate!.toFixed(0)} submissions/s`
    : 'no warm-up (BENCH_TP_WARMUP=0): measured on services just started');
  console.log(`  submissions/s            ${rate.toFixed(0).padStart(8)}   target >= 400: ${rate >= 400 ? 'PASS' : 'FAIL'}`);
  console.log(`  submissions/s (SubmitJobs, batches of 100) ${batchRate.toFixed(0).padStart(8)}   target >= 400: ${batchRate >= 400 ? 'PASS' : 'FAIL'}`);
  console.log(`  end-to-end jobs/s        ${jobsPerSec.toFixed(1).padStart(8)}   target >= 60: ${jobsPerSec >= 60 ? 'PASS' : 'FAIL'}`);
  console.log(`  control-plane CPU/job    ${controlPlane.toFixed(1).padStart(6)} ms   target <= 8 ms: ${controlPlane <= 8 ? 'PASS' : 'FAIL'}`);
  for (const k of ['scheduler', 'gateway', 'checkpoint', 'agents']) console.log(`    ${k.padEnd(22)}${perJob(k).toFixed(1).padStart(6)} ms   (${sysPerJob(k).toFixed(1)} ms of it in the kernel)`);
  console.log(`    (rank processes the agents ran, not counted: ${ranks.toFixed(1)} ms per job)`);
  console.log(`  submit-to-done p50       ${p50.toFixed(0).padStart(6)} ms   (p90 ${pct(latencies, 0.9).toFixed(0)} ms, ${INTERACTIVE} jobs)   target <= 50 ms: ${p50 <= 50 ? 'PASS' : 'FAIL'}`);
} finally {
  client.close();
  await stack.stop();
}

// The submission half of `pnpm bench:throughput` alone (issue 14): BENCH_TP_JOBS (2,000) 1-GPU
// jobs submitted through the gateway with 64 calls in flight, and the CPU of every process over
// the submissions only (services, redis-server, nats-server, this client), per submission, with
// the machine's busy share. BENCH_AGENTS (4) agents run the jobs meanwhile, as in
// bench:throughput; with BENCH_AGENTS=0 nothing runs, so the figures are the submission path's
// own. BENCH_TP_PROFILE=DIR writes CPU profiles of the scheduler and the gateway.
// Run: pnpm bench:submit
import { readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { GantryClient } from '@gantry/sdk';
import { TestStack } from '../harness/stack.js';

const JOBS = Number(process.env.BENCH_TP_JOBS ?? 2000);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 4);
const TICK = 100; // USER_HZ

function stat(pid: number): { ppid: number; cpu: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICK };
  } catch {
    return { ppid: 0, cpu: 0 };
  }
}
const comm = (pid: number) => { try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; } };
/** Busy and total jiffies of the whole machine (every process, ours or not). */
function machine(): { busy: number; all: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  return { busy: f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!, all: f.reduce((a, b) => a + b, 0) };
}

const profile = process.env.BENCH_TP_PROFILE
  ? { NODE_OPTIONS: `--import ${new URL('./cpu-profile-hook.mjs', import.meta.url).pathname}`, GANTRY_CPU_PROFILE_DIR: process.env.BENCH_TP_PROFILE }
  : undefined;
const load = loadavg()[0]!;
const stack = await new TestStack({
  agents: AGENTS, schedulers: 1, heartbeatIntervalMs: 2_000, heartbeatTimeoutMs: 10_000,
  ...(profile ? { env: { scheduler: profile, gateway: profile } } : {}),
}).start();
const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 60_000, configFile: false });
try {
  // redis-server and nats-server are this process's children (the harness starts them).
  const infra: Record<string, number[]> = { redis: [], nats: [] };
  for (const d of readdirSync('/proc')) {
    const pid = Number(d);
    if (!pid || stat(pid).ppid !== process.pid) continue;
    const c = comm(pid);
    if (c.startsWith('redis')) infra.redis!.push(pid);
    if (c.startsWith('nats')) infra.nats!.push(pid);
  }
  const procs: Record<string, number[]> = {
    scheduler: stack.schedulers.map((p) => p.pid!), gateway: [stack.gateway.pid!], agents: stack.agents.map((p) => p.pid!), checkpoint: [stack.checkpoint.pid!], ...infra,
  };
  const sample = () => Object.fromEntries(Object.entries(procs).map(([k, ps]) => [k, ps.reduce((s, p) => s + stat(p).cpu, 0)]));
  // One submission first, so connections and code paths are warm before the measured window.
  await client.submitJob({ name: 'warm', tenant: 'bench', nodes: 1, gpusPerNode: 1, command: ['true'], workingDir: '' });
  const before = sample();
  const self0 = process.cpuUsage();
  const m0 = machine();
  const lat: number[] = [];
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let i = next++; i < JOBS; i = next++) {
      const t = performance.now();
      await client.submitJob({ name: `tp-${i}`, tenant: 'bench', nodes: 1, gpusPerNode: 1, command: ['true'], workingDir: '' }, { idempotencyKey: `tp-${i}` });
      lat.push(performance.now() - t);
    }
  }));
  const sec = (performance.now() - t0) / 1000;
  const after = sample();
  const self = process.cpuUsage(self0);
  const m1 = machine();
  lat.sort((a, b) => a - b);
  const per = (k: string) => (((after[k]! - before[k]!) * 1000) / JOBS).toFixed(2);
  console.log(`${JOBS} submissions, ${AGENTS} agents; load average ${load.toFixed(1)}, machine busy ${((100 * (m1.busy - m0.busy)) / (m1.all - m0.all)).toFixed(0)}% meanwhile`);
  console.log(`  ${(JOBS / sec).toFixed(0)} submissions/s, latency p50 ${lat[Math.floor(lat.length / 2)]!.toFixed(0)} ms, p99 ${lat[Math.floor(lat.length * 0.99)]!.toFixed(0)} ms`);
  console.log(`  CPU ms per submission: ${Object.keys(procs).map((k) => `${k} ${per(k)}`).join(', ')}, this client ${((self.user + self.system) / 1000 / JOBS).toFixed(2)}`);
} finally {
  client.close();
  await stack.stop();
}

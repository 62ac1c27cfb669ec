// `pnpm bench:agent`: (1) CPU time and allocation of one collection cycle on the fixture data
// of a realistic host, and the RSS of a real agent process; (2) fan-in: N simulated agents
// (many per process) reporting every interval through a real nats-server into one real
// scheduler, printing the scheduler's processing lag and CPU use.
// Env: BENCH_AGENTS (2000), BENCH_INTERVAL_MS (10000), BENCH_DURATION_MS (60000), BENCH_WORKERS (4).
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchCollectCycle } from './collect-cycle.js';
import { startNats, startRedis } from '../../../test/harness/infra.js';
import { freePort } from '../../../test/harness/ports.js';
import { ManagedProcess } from '../../../test/harness/process.js';
import { REPO_ROOT, serviceCommand, simAgentEnv } from '../../../deploy/local/services.js';
import { writeCommandKeys } from '../../../deploy/local/bus-security.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 2000);
const INTERVAL = Number(process.env.BENCH_INTERVAL_MS ?? 10_000);
const DURATION = Number(process.env.BENCH_DURATION_MS ?? 60_000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function metric(text: string, name: string, labels = ''): number {
  const re = new RegExp(`^${name}${labels ? `\\{[^}]*${labels}[^}]*\\}` : '(\\{[^}]*\\})?'} ([0-9.e+-]+)$`, 'm');
  return Number(re.exec(text)?.[2] ?? re.exec(text)?.[1] ?? NaN);
}

/** Quantile from a Prometheus histogram's cumulative buckets (upper bound of the bucket). */
function histogramQuantile(text: string, name: string, q: number): number {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\d+)`, 'gm'))].map((m) => ({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), n: Number(m[2]) }));
  const total = buckets.at(-1)?.n ?? 0;
  return buckets.find((b) => b.n >= q * total)?.le ?? NaN;
}

// --- 1. one collection cycle ---------------------------------------------------------------
const cycle = benchCollectCycle(2000);
console.log('== collection cycle (8 GPUs, 4 NFS mounts, 2 HCAs; fixture data) ==');
console.log(`  ${cycle.msPerCycle.toFixed(3)} ms/cycle wall, ${cycle.cpuMsPerCycle.toFixed(3)} ms/cycle CPU, ${(cycle.allocatedBytesPerCycle / 1024).toFixed(0)} KiB allocated/cycle, ${cycle.encodedBytes} B/batch   target < 5 ms: ${cycle.msPerCycle < 5 ? 'PASS' : 'FAIL'}`);

const work = mkdtempSync(join(tmpdir(), 'gantry-bench-agent-'));
const [nats, redis] = await Promise.all([startNats(join(work, 'nats')), startRedis(join(work, 'redis'))]);
const schedMetrics = await freePort();
// Command signing keys as the local stack makes them (no NATS users here: the fan-in workers connect plainly).
const keys = writeCommandKeys(join(work, 'keys'));
const { command, args, cwd } = serviceCommand('scheduler');
const scheduler = new ManagedProcess({
  name: 'scheduler', command, args, cwd, logFile: join(work, 'scheduler.log'),
  env: { NATS_URL: nats.url, REDIS_URL: redis.url, METRICS_PORT: String(schedMetrics), SCHEDULER_GRPC_PORT: String(await freePort()), HEARTBEAT_INTERVAL_MS: String(INTERVAL), HEARTBEAT_TIMEOUT_MS: String(INTERVAL * 6), LOG_LEVEL: 'warn', COMMAND_SIGNING_KEY_FILE: keys.privateKeyFile },
  ready: async () => (await scrape(schedMetrics).catch(() => '')).includes('gantry_scheduler_leader 1'),
});
await scheduler.start();

// --- 2. a real agent process's memory, as installed (the esbuild bundle) --------------------
execFileSync('pnpm', ['-s', 'build:agent'], { cwd: REPO_ROOT, stdio: 'inherit' });
const agent = new ManagedProcess({
  name: 'agent', command: process.execPath, args: [join(REPO_ROOT, 'dist/gantry-agent.mjs')], cwd: REPO_ROOT, logFile: join(work, 'agent.log'),
  // As the systemd unit runs it (deploy/systemd/gantry-agent.service).
  env: { ...simAgentEnv('rss-probe', join(work, 'agent')), MALLOC_ARENA_MAX: '2', NATS_URL: nats.url, TELEMETRY_INTERVAL_MS: '1000', LOG_LEVEL: 'warn', SCHEDULER_PUBLIC_KEY_FILE: keys.publicKeyFile },
  ready: async () => true,
});
await agent.start();
// Steady state, not start-up: sample every second from 10 s to 40 s and take the median.
const samples: number[] = [];
await new Promise((r) => setTimeout(r, 10_000));
for (let i = 0; i < 30; i++) { samples.push(rssMiB(agent.pid!)); await new Promise((r) => setTimeout(r, 1_000)); }
samples.sort((a, b) => a - b);
const agentRss = samples[Math.floor(samples.length / 2)]!;
console.log(`== agent process (dist/gantry-agent.mjs, simulated 8-GPU host, 1 s telemetry, registered, 10-40 s) ==\n  RSS median ${agentRss.toFixed(1)} MiB, max ${samples.at(-1)!.toFixed(1)} MiB   target < 100 MiB: ${agentRss < 100 ? 'PASS' : 'FAIL'}`);
await agent.stop();

// --- 3. fan-in -----------------------------------------------------------------------------
console.log(`== fan-in: ${AGENTS} simulated agents in ${WORKERS} processes, every ${INTERVAL / 1000} s for ${DURATION / 1000} s, one scheduler ==`);
const per = Math.ceil(AGENTS / WORKERS);
const before = await scrape(schedMetrics);
const cpu0 = metric(before, 'gantry_process_cpu_seconds_total');
let registered = 0;
const results: { published: number; failed: number; cpuMs: number }[] = [];
const t0 = Date.now();
let measureFrom = 0;
let cpuAtStart = cpu0;
await Promise.all(Array.from({ length: WORKERS }, (_, w) => new Promise<void>((resolve, reject) => {
  const child = fork(join(import.meta.dirname, 'fan-in-worker.ts'), [nats.url, String(w * per), String(Math.min(per, AGENTS - w * per)), String(INTERVAL), String(DURATION)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  child.on('message', (m: { type: string; count?: number; published?: number; failed?: number; cpuMs?: number }) => {
    if (m.type === 'registered') {
      registered += m.count!;
      if (registered === AGENTS) {
        measureFrom = Date.now();
        void scrape(schedMetrics).then((t) => { cpuAtStart = metric(t, 'gantry_process_cpu_seconds_total'); });
        console.log(`  ${AGENTS} nodes registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
    }
    if (m.type === 'done') results.push({ published: m.published!, failed: m.failed!, cpuMs: m.cpuMs! });
  });
  child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker ${w} exited ${code}`))));
})));
// Let the scheduler drain what is in flight.
await new Promise((r) => setTimeout(r, 3_000));
const after = await scrape(schedMetrics);
const wall = (Date.now() - measureFrom) / 1000;
const cpu = metric(after, 'gantry_process_cpu_seconds_total') - cpuAtStart;
const stored = metric(after, 'gantry_telemetry_batches_total') - metric(before, 'gantry_telemetry_batches_total');
const published = results.reduce((n, r) => n + r.published, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const p50 = histogramQuantile(after, 'gantry_telemetry_ingest_lag_seconds', 0.5);
const p99 = histogramQuantile(after, 'gantry_telemetry_ingest_lag_seconds', 0.99);
const max = histogramQuantile(after, 'gantry_telemetry_ingest_lag_seconds', 1);
console.log(`  batches published ${published} (failed ${failed}), stored by the scheduler ${stored}   ${(stored / wall).toFixed(0)} batches/s`);
console.log(`  scheduler processing lag (collection -> Redis): p50 <= ${p50} s, p99 <= ${p99} s, max <= ${max} s   target < ${INTERVAL / 1000} s: ${p99 < INTERVAL / 1000 ? 'PASS' : 'FAIL'}`);
console.log(`  scheduler CPU ${(100 * cpu / wall).toFixed(1)} % of one core over ${wall.toFixed(0)} s   RSS ${rssMiB(scheduler.pid!).toFixed(0)} MiB`);
await scheduler.stop();
await Promise.all([nats.stop(), redis.stop()]);

// The whole collection cycle of the real nvidia-smi backend, forks included: NvidiaSmiBackend
// -> TelemetryCollector -> TelemetryBatch, every interval, against a native stand-in binary
// (nvidia-smi-standin.c, built here with cc) that prints recorded output of a real H100's
// nvidia-smi for 8 GPUs and takes a set time. Two ways of reading the GPUs:
//   fork per cycle   `--query-gpu` and `pci -gErrCnt`, two forks per cycle (the default);
//   nvidia-smi loop  `--query-gpu` as a long-running `-lms <interval>` loop (loopIntervalMs),
//                    `pci -gErrCnt` still a fork per cycle (it has no loop option).
// CPU per cycle = the agent's own (process.cpuUsage) + nvidia-smi's: reaped children
// (/proc/self/stat cutime+cstime) for forks, plus the loop's /proc/<pid>/stat for the loop.
// NFS and fabric come from the same fixtures as collect-cycle.ts.
// With BENCH_SMI_BINARY (a real nvidia-smi, on a GPU host: test/device/run.sh) the same two
// modes run against it instead of the stand-in, on however many GPUs that host has.
//
//   node --import tsx services/node-agent/bench/smi-cycle.ts
// Env: BENCH_SMI_CYCLES (20), BENCH_SMI_INTERVAL_MS (1000), BENCH_SMI_INIT_MS (37),
//      BENCH_SMI_QUERY_MS (10), BENCH_SMI_CPU_SHARE (0.85), BENCH_SMI_BINARY (unset: the stand-in)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TelemetryBatch } from '@gantry/proto';
import { fieldKey, GPU_QUERY_FIELDS } from '../src/collectors/gpu/query-csv.js';
import { TelemetryCollector } from '../src/collectors/index.js';
import { NvidiaSmiBackend } from '../src/device/index.js';
import { realisticHostReadings } from './collect-cycle.js';

const FIXTURES = fileURLToPath(new URL('../test/fixtures/', import.meta.url));

export interface StandInModel {
  initMs: number;
  queryMs: number;
  cpuShare: number;
}

export interface SmiCycleResult {
  mode: 'fork per cycle' | 'nvidia-smi loop';
  cycles: number;
  wallP50: number;
  wallMax: number;
  agentCpuMs: number;
  smiCpuMs: number;
  /** Long-running nvidia-smi processes (loop) or forks per cycle. */
  processes: string;
  /** CPU of the fabric read alone (InfiniBand sysfs + ethtool), ms per cycle: not nvidia-smi, but in every cycle. */
  rdmaCpuMs: number;
}

export interface SmiBench {
  /** The stand-in's model; undefined when a real nvidia-smi was measured (`binary`). */
  model?: StandInModel;
  /** The real nvidia-smi measured, and how many GPUs it reported. */
  real?: { binary: string; gpus: number };
  queryBytes: number;
  pcieBytes: number;
  results: SmiCycleResult[];
}

const envNum = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);

/** The stand-in's outputs: `--query-gpu` of the agent's fields (the H100 capture) and `pci -gErrCnt` (the H200 capture), 8 GPUs. */
function renderOutputs(dir: string): { queryBytes: number; pcieBytes: number } {
  const gpu = realisticHostReadings().gpu!;
  const rows = gpu.csv.split('\n').map((r) => r.split(','));
  const query = rows.map((cells) => GPU_QUERY_FIELDS.map((f) => {
    const i = gpu.fields.indexOf(fieldKey(f));
    return i < 0 ? ' [N/A]' : cells[i]!;
  }).join(',').replace(/^ /, '')).join('\n') + '\n';
  // The same host's `pci -gErrCnt` (one block per GPU, with the CSV's UUIDs, so the counters attach).
  const pcie = gpu.pcieErrors!;
  writeFileSync(join(dir, 'query.csv'), query);
  writeFileSync(join(dir, 'pci.txt'), pcie);
  return { queryBytes: Buffer.byteLength(query), pcieBytes: Buffer.byteLength(pcie) };
}

function buildStandIn(dir: string): string {
  const out = join(dir, 'nvidia-smi');
  const source = fileURLToPath(new URL('./nvidia-smi-standin.c', import.meta.url));
  try {
    execFileSync('cc', ['-O2', '-o', out, source], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot build the nvidia-smi stand-in (${source}) with cc: ${(err as Error).message.split('\n')[0]} (install a C compiler, e.g. apt-get install gcc)`);
  }
  return out;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime+stime (and with `children`, cutime+cstime) of a process, ms. */
function procCpuMs(pid: number | 'self', children = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14-17 of proc(5), counted after "pid (comm)": state is field 3 -> index 0.
  const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number) as [number, number, number, number];
  return ((children ? cutime + cstime : utime + stime) * 1000) / CLK_TCK;
}

async function runMode(mode: SmiCycleResult['mode'], binary: string, cycles: number, intervalMs: number): Promise<SmiCycleResult> {
  const loop = mode === 'nvidia-smi loop';
  const backend = new NvidiaSmiBackend({
    binary,
    mountstatsPath: `${FIXTURES}nfs/nfsmountstats_testdata_proc_self_mountstats.txt`,
    infinibandRoot: `${FIXTURES}rdma/gpud-sys-class-infiniband-h100.0`,
    ...(loop ? { loopIntervalMs: intervalMs } : {}),
  });
  const collector = new TelemetryCollector(backend, { node: 'bench-node' });
  const cycle = async () => {
    const t0 = performance.now();
    const batch = await collector.collect();
    TelemetryBatch.encode(batch).finish();
    if (batch.collectorErrors.length > 0) throw new Error(`${mode}: collector errors ${batch.collectorErrors.map((e) => e.message).join('; ')}`);
    // A cycle that parsed the PCIe counters but matched none to a GPU would measure less than the agent does.
    if (batch.gpus.some((g) => g.pcieReplayCount === undefined)) throw new Error(`${mode}: a GPU without its PCIe counters`);
    return performance.now() - t0;
  };
  const tick = async (started: number) => new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (performance.now() - started))));
  // Warm-up: the loop mode's first cycle forks (it settles the fields) and starts the loops.
  for (let i = 0; i < 3; i++) {
    const s = performance.now();
    await cycle();
    await tick(s);
  }
  // The loop's own CPU (loop mode) plus every reaped fork's (both modes: `pci` forks in each).
  const smiCpu = () => backend.loopPids().reduce((n, p) => n + procCpuMs(p), 0) + procCpuMs('self', true);
  const pids = backend.loopPids().join(',');
  const cpu0 = process.cpuUsage();
  const smi0 = smiCpu();
  const walls: number[] = [];
  for (let i = 0; i < cycles; i++) {
    const s = performance.now();
    walls.push(await cycle());
    await tick(s);
  }
  const cpu = process.cpuUsage(cpu0);
  const smi = smiCpu() - smi0;
  const rdma0 = process.cpuUsage();
  for (let i = 0; i < cycles; i++) await backend.readRdma();
  const rdma = process.cpuUsage(rdma0);
  if (loop && backend.loopPids().join(',') !== pids) throw new Error('the nvidia-smi loop restarted during the measurement');
  backend.close();
  walls.sort((a, b) => a - b);
  return {
    mode,
    cycles,
    wallP50: walls[Math.floor(walls.length / 2)]!,
    wallMax: walls.at(-1)!,
    agentCpuMs: (cpu.user + cpu.system) / 1000 / cycles,
    smiCpuMs: smi / cycles,
    processes: loop ? '1 long-running, 1 fork per cycle' : '2 forks per cycle',
    rdmaCpuMs: (rdma.user + rdma.system) / 1000 / cycles,
  };
}

export async function benchSmiCycle(cycles = envNum('BENCH_SMI_CYCLES', 20), intervalMs = envNum('BENCH_SMI_INTERVAL_MS', 1000)): Promise<SmiBench> {
  const realBinary = process.env.BENCH_SMI_BINARY;
  if (realBinary) {
    const run = (args: string[]) => execFileSync(realBinary, args, { encoding: 'utf8' });
    const query = run([`--query-gpu=${GPU_QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits']);
    const pcie = run(['pci', '-gErrCnt']);
    const gpus = query.trim().split('\n').filter((l) => l.trim() !== '').length;
    const results = [await runMode('fork per cycle', realBinary, cycles, intervalMs), await runMode('nvidia-smi loop', realBinary, cycles, intervalMs)];
    return { real: { binary: realBinary, gpus }, queryBytes: Buffer.byteLength(query), pcieBytes: Buffer.byteLength(pcie), results };
  }
  const dir = mkdtempSync(join(tmpdir(), 'gantry-bench-smi-'));
  const binary = buildStandIn(dir);
  const sizes = renderOutputs(dir);
  // Fitted to a real H200 (1 GPU, driver 580; test/device/run.sh, docs/agent.md): a fork of
  // `--query-gpu` 43-54 ms wall, about 40 ms of it CPU (mostly system time), and a loop's reading
  // 8-10 ms of CPU: start-up 37 ms + 10 ms per query, 85 % on the CPU. A `pci -gErrCnt` fork is
  // cheaper there (26-29 ms) than this model makes it (47 ms), in both modes alike. An 8-GPU
  // host was not measured: per-query time with 8 GPUs is not known.
  const model: StandInModel = { initMs: envNum('BENCH_SMI_INIT_MS', 37), queryMs: envNum('BENCH_SMI_QUERY_MS', 10), cpuShare: envNum('BENCH_SMI_CPU_SHARE', 0.85) };
  process.env.STANDIN_DIR = dir;
  process.env.STANDIN_INIT_MS = String(model.initMs);
  process.env.STANDIN_QUERY_MS = String(model.queryMs);
  process.env.STANDIN_CPU_SHARE = String(model.cpuShare);
  const results = [await runMode('fork per cycle', binary, cycles, intervalMs), await runMode('nvidia-smi loop', binary, cycles, intervalMs)];
  return { model, ...sizes, results };
}

export function printSmiBench(b: SmiBench, intervalMs: number): void {
  const what = b.real
    ? `the real ${b.real.binary} on this host's ${b.real.gpus} GPU(s): --query-gpu ${b.queryBytes} B, pci -gErrCnt ${b.pcieBytes} B`
    : `stand-in binary with the H100 capture's output for 8 GPUs: --query-gpu ${b.queryBytes} B, pci -gErrCnt ${b.pcieBytes} B; ${b.model!.initMs} ms start-up + ${b.model!.queryMs} ms per query, ${Math.round(b.model!.cpuShare * 100)}% of it on the CPU, fitted to a real H200's`;
  console.log(`== nvidia-smi backend, whole cycle every ${intervalMs} ms (${what}) ==`);
  for (const r of b.results) {
    console.log(`  ${r.mode.padEnd(15)}  wall p50 ${r.wallP50.toFixed(2)} ms, max ${r.wallMax.toFixed(2)} ms; CPU per cycle: agent ${r.agentCpuMs.toFixed(2)} ms + nvidia-smi ${r.smiCpuMs.toFixed(2)} ms = ${(r.agentCpuMs + r.smiCpuMs).toFixed(2)} ms (${r.processes}; ${r.cycles} cycles)`);
  }
  const [fork, loop] = b.results as [SmiCycleResult, SmiCycleResult];
  const f = fork.agentCpuMs + fork.smiCpuMs;
  const l = loop.agentCpuMs + loop.smiCpuMs;
  console.log(`  of the agent's CPU, reading the fabric (486 InfiniBand sysfs files of the H100 fixture, ethtool) alone takes ${fork.rdmaCpuMs.toFixed(2)} ms per cycle`);
  console.log(`  the loop costs ${l < f ? 'less' : 'MORE'}: ${l.toFixed(2)} vs ${f.toFixed(2)} ms CPU per cycle (${((1 - l / f) * 100).toFixed(0)}% ${l < f ? 'saved' : 'extra'}); wall p50 ${loop.wallP50.toFixed(2)} vs ${fork.wallP50.toFixed(2)} ms`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const intervalMs = envNum('BENCH_SMI_INTERVAL_MS', 1000);
  printSmiBench(await benchSmiCycle(undefined, intervalMs), intervalMs);
}

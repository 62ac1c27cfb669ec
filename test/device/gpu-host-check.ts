// The GPU-host check (test/device/README.md): a whole single-host Gantry (nats-server,
// redis-server, scheduler, gateway, checkpoint service) and one agent on the real nvidia-smi
// backend, on a host with an NVIDIA GPU, PyTorch and torchrun. It checks what no CI machine
// can: the agent's fingerprint and telemetry from a real driver (nvidia-smi loops on), and a
// real PyTorch job run by the agent (torchrun, NCCL, a DCP checkpoint every 100 steps reported
// through python/gantry_ckpt.py), which crashes on purpose on its first attempt (step 150) and
// is recovered in place from its newest committed checkpoint (step-100). Each check prints one line,
// PASS or FAIL with what was seen; everything read is written under $OUT for the record.
//
//   node gpu-host-check.mjs          (bundled by test/device/prepare.sh; run by run.sh)
// Env: OUT (where to write), TORCH_BIN (/opt/torch/.venv/bin), GANTRY_BUNDLE_DIR (the services),
//      GANTRY_DEVICE_AGENT (a file: run the agent from it, e.g. the installed bundle
//      dist/gantry-agent.mjs, instead of the stack's bundle), GANTRY_NVIDIA_SMI_LOOP (true).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointClient, GantryClient, checkpointSpec } from '@gantry/sdk';
import { CheckpointState, FailureClass, GpuTelemetry, JobState, Launcher, jobStateName, Job as JobMsg, Node as NodeMsg, TelemetryBatch, type Job } from '@gantry/proto';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { TestStack, eventually } from '../harness/stack.js';

const OUT = process.env.OUT ?? join(REPO_ROOT, '.device', 'out');
const TORCH_BIN = process.env.TORCH_BIN ?? '/opt/torch/.venv/bin';
mkdirSync(OUT, { recursive: true });

interface Check { name: string; pass: boolean; detail: string }
const checks: Check[] = [];
function check(name: string, pass: boolean, detail: string): void {
  checks.push({ name, pass, detail });
  console.log(`CHECK ${pass ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
}
const save = (file: string, value: unknown) => writeFileSync(join(OUT, file), typeof value === 'string' ? value : JSON.stringify(value, null, 2));
const seconds = (a?: Date, b?: Date) => (a && b ? ((b.getTime() - a.getTime()) / 1000).toFixed(2) : '?');

const installedAgent = process.env.GANTRY_DEVICE_AGENT;
const stack = new TestStack({
  agents: 1,
  ...(installedAgent ? { agentCommand: { command: process.execPath, args: [installedAgent] } } : {}),
  // The defaults a deployment runs with, not the tests' fast ones.
  heartbeatIntervalMs: 2_000,
  heartbeatTimeoutMs: 10_000,
  leaseTtlMs: 5_000,
  stopGraceSeconds: 5,
  agentEnv: () => ({
    DEVICE_BACKEND: 'nvidia-smi',
    GANTRY_NVIDIA_SMI_LOOP: process.env.GANTRY_NVIDIA_SMI_LOOP ?? 'true',
    TELEMETRY_INTERVAL_MS: '5000',
    LOG_LEVEL: 'info',
  }),
  env: { scheduler: { LOG_LEVEL: 'info' }, gateway: { LOG_LEVEL: 'info' }, checkpoint: { LOG_LEVEL: 'info' } },
});

const t0 = Date.now();
let client: GantryClient | undefined;
try {
  await stack.start();
  console.log(`stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s (work dir ${stack.workDir}; agent ${installedAgent ?? 'the stack bundle'}, nvidia-smi loop ${process.env.GANTRY_NVIDIA_SMI_LOOP ?? 'true'})`);
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000, retry: { maxAttempts: 20 } });
  await fingerprint(client);
  await telemetry(client);
  smiLoops();
  await perGpuJob(client);
  await trainingJob(client);
} catch (err) {
  check('run', false, (err as Error).stack ?? String(err));
} finally {
  client?.close();
  await stack.stop().catch(() => undefined);
  // TestStack removes its work dir unless GANTRY_KEEP_TEST_DIRS; run.sh keeps it and copies the logs.
  save('checks.json', checks);
  const failed = checks.filter((c) => !c.pass);
  console.log(`${checks.length - failed.length} of ${checks.length} checks passed${failed.length ? `; FAILED: ${failed.map((c) => c.name).join(', ')}` : ''} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  process.exitCode = failed.length > 0 || checks.length === 0 ? 1 : 0;
}

/** The node as the agent registered it from nvidia-smi. */
async function fingerprint(c: GantryClient): Promise<void> {
  const node = await c.getNode(stack.nodeName(0));
  save('node.json', NodeMsg.toJSON(node));
  const gpus = node.gpus;
  const described = gpus.map((g) => `${g.index}: ${g.model} ${g.memoryMib} MiB ${g.uuid}`).join('; ');
  check('fingerprint', gpus.length > 0 && gpus.every((g) => g.model.startsWith('NVIDIA') && g.memoryMib > 0 && g.uuid.startsWith('GPU-')), `${gpus.length} GPU(s): ${described}`);
}

/** Telemetry batches from the real backend reach the scheduler with no collector errors. */
async function telemetry(c: GantryClient): Promise<void> {
  const name = stack.nodeName(0);
  // Two batches: the second carries rates (counters need a previous reading).
  const res = await eventually('two telemetry batches', async () => {
    const r = await c.getNodeTelemetry(name, { history: 4 });
    return r.latest && r.history.length >= 2 ? r : undefined;
  }, 60_000, 1_000);
  const latest = res.latest!;
  save('telemetry-latest.json', TelemetryBatch.toJSON(latest));
  const gpu = latest.gpus[0];
  const errors = latest.collectorErrors.map((e) => `${e.collector}: ${e.message}`);
  // pcieReplayCount comes from `nvidia-smi pci -gErrCnt` (driver 580 refuses `-q -d PCIE`).
  check('telemetry', gpu !== undefined && errors.length === 0 && gpu.pcieReplayCount !== undefined && gpu.pcieLinkRecoveryCount !== undefined, `${latest.gpus.length} GPU sample(s), collector errors: ${errors.length ? errors.join('; ') : 'none'}; GPU 0: ${gpu ? JSON.stringify(GpuTelemetry.toJSON(gpu)) : 'none'}`);
}

/** With the loop on (the default here), the agent reads `--query-gpu` from one long-running nvidia-smi. */
function smiLoops(): void {
  const found = new Map<string, { ppid: string; argv: string[] }>();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (argv.some((a) => a.endsWith('nvidia-smi')) && argv.includes('-lms')) found.set(pid, { ppid: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!, argv });
    } catch {
      // gone meanwhile
    }
  }
  // A script standing in for nvidia-smi forks copies of itself; the loops are the outermost.
  const loops = [...found].filter(([, p]) => !found.has(p.ppid)).map(([pid, p]) => `${pid}: ${p.argv.map((a) => (a.length > 40 ? `${a.slice(0, 40)}...` : a)).join(' ')}`);
  const wanted = (process.env.GANTRY_NVIDIA_SMI_LOOP ?? 'true') === 'true' ? 1 : 0;
  check('nvidia-smi loops', loops.length === wanted, `${loops.length} running (want ${wanted}): ${loops.join('; ') || '-'}`);
}

/** A per-GPU rank sees exactly its one GPU through CUDA. */
async function perGpuJob(c: GantryClient): Promise<void> {
  const py = 'import os, torch; print("cuda", torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0), "RANK", os.environ["RANK"], "LOCAL_RANK", os.environ["LOCAL_RANK"], "CUDA_VISIBLE_DEVICES", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)';
  const { job } = await c.submitJob({ name: 'device-per-gpu', tenant: 'device', nodes: 1, gpusPerNode: 1, launcher: Launcher.LAUNCHER_PER_GPU, command: [join(TORCH_BIN, 'python'), '-c', py], workingDir: REPO_ROOT });
  const done = await finished(c, job!.id, 120_000);
  const logs = await logsOf(c, done.id);
  save('per-gpu-job.log', logs);
  check('per-gpu job', done.state === JobState.JOB_STATE_SUCCEEDED && /cuda True 1 /.test(logs), `${jobStateName(done.state)} (${done.reason}); ${logs.trim().split('\n').slice(-1)[0] ?? ''}`);
}

/** torchrun + NCCL + DCP checkpoints; attempt 1 crashes at step 150, attempt 2 resumes from step-100. */
async function trainingJob(c: GantryClient): Promise<void> {
  const dir = join(stack.workDir, 'checkpoints', `train-${Date.now()}`);
  const torchrun = `${join(TORCH_BIN, 'torchrun')} --nnodes="$NNODES" --node-rank="$NODE_RANK" --nproc-per-node="$LOCAL_WORLD_SIZE" --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" test/device/train.py`;
  const submitted = Date.now();
  const { job } = await c.submitJob({
    name: 'device-train', tenant: 'device', nodes: 1, gpusPerNode: 1, command: ['sh', '-c', torchrun], workingDir: REPO_ROOT,
    env: { PYTHONPATH: join(REPO_ROOT, 'python'), STEPS: '300', CKPT_EVERY: '100', CRASH_AT_STEP: '150' },
    retry: { maxRecoveries: 1, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION], backoffInitialMs: 1_000 },
    checkpoint: checkpointSpec({ dir, format: 'auto' }),
  });
  const id = job!.id;
  const running = await eventually('training job RUNNING', async () => {
    const j = await c.getJob(id);
    return j.state === JobState.JOB_STATE_RUNNING || j.state >= JobState.JOB_STATE_SUCCEEDED ? j : undefined;
  }, 60_000, 50);
  const toRunning = Date.now() - submitted;
  const done = await finished(c, id, 300_000);
  save('train-job.json', JobMsg.toJSON(done));
  const logs = await logsOf(c, id);
  save('train-job.log', logs);
  const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 10_000, tls: stack.internalClientTls });
  try {
    const all = await ck.listCheckpoints(id);
    save('train-checkpoints.json', all);
    const committed = all.filter((x) => x.state === CheckpointState.CHECKPOINT_STATE_COMMITTED).map((x) => `${x.step}@attempt${x.attempt} ${x.source} ${x.bytes} B`);
    check('training job', done.state === JobState.JOB_STATE_SUCCEEDED && done.attempt === 2, `${jobStateName(done.state)} after ${done.attempt} attempt(s) (${done.reason}); RUNNING ${toRunning} ms after submit (${jobStateName(running.state)})`);
    const [a1, a2] = done.attempts;
    // train.py raises at step 150 under @record: torchrun exits 1 and writes the worker's error to the file the agent reads.
    const f = a1?.failure;
    check('failure attributed', f?.failureClass === FailureClass.FAILURE_CLASS_APPLICATION && /on purpose/.test(`${f.reason} ${f.evidence}`), `attempt 1: ${JSON.stringify(f ?? null)}`);
    check('resumed from newest committed', a2?.resumedFromCheckpoint === join(dir, 'step-100'), `attempt 2 resumed from ${a2?.resumedFromCheckpoint || '(none)'}; grade ${a2?.grade}; attempt 1 finished -> attempt 2 started ${seconds(a1?.finishedAt, a2?.startedAt)} s`);
    const saved = /step 100 .*checksum (-?[\d.]+)/.exec(logs)?.[1];
    const loaded = /resumed from .* at step 100, checksum (-?[\d.]+)/.exec(logs)?.[1];
    check('weights restored', saved !== undefined && saved === loaded, `checksum at save ${saved ?? '?'}, at load ${loaded ?? '?'}`);
    check('checkpoints committed', [100, 200, 300].every((s) => committed.some((x) => x.startsWith(`${s}@`))), committed.join(', ') || 'none');
  } finally {
    ck.close();
  }
}

async function finished(c: GantryClient, id: string, timeoutMs: number): Promise<Job> {
  const ends = [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED];
  return eventually(`job ${id} to end`, async () => {
    const j = await c.getJob(id);
    return ends.includes(j.state) ? j : undefined;
  }, timeoutMs, 250);
}

async function logsOf(c: GantryClient, id: string): Promise<string> {
  const lines: string[] = [];
  for await (const l of c.streamLogs(id, { follow: false })) lines.push(`[node-rank ${l.rank}] ${l.line?.text ?? ''}`);
  return `${lines.join('\n')}\n`;
}

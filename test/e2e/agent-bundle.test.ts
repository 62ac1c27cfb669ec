// The agent as it is installed on a GPU host: `pnpm build:agent` bundles it into one file
// (dist/gantry-agent.mjs, what deploy/install ships and the systemd unit runs with plain
// node, no tsx, no node_modules beside it). Run that file as the agent of a real stack: it
// must start, register, take a job and report its exit. A dependency that only works from
// node_modules (a proto file read through __dirname at import, say) breaks the bundle and
// nothing else would notice. It runs on the real nvidia-smi backend, as on a GPU host, with a
// stand-in nvidia-smi on PATH that replays real captures (services/node-agent/test/helpers):
// the telemetry a real host's agent sends (its `--query-gpu` loop, the PCIe error counters of
// `nvidia-smi pci -gErrCnt`) reaches the scheduler, and the loop stops with the agent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobState } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually, TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';
import { fakeNvidiaSmi } from '../../services/node-agent/test/helpers/fake-nvidia-smi.js';

const BUNDLE = join(REPO_ROOT, 'dist', 'gantry-agent.mjs');
const SMI_DIR = mkdtempSync(join(tmpdir(), 'gantry-bundle-smi-'));
const SMI = fakeNvidiaSmi(SMI_DIR);

/** Running processes of the stand-in started with `-lms` (the agent's loop), outermost only. */
function smiLoops(): string[] {
  const found = new Map<string, string>();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (argv.includes(SMI) && argv.includes('-lms')) found.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!);
    } catch {
      // gone meanwhile
    }
  }
  return [...found].filter(([, ppid]) => !found.has(ppid)).map(([pid]) => pid);
}
let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  await new Promise<void>((resolve, reject) => {
    execFile('pnpm', ['-s', 'build:agent'], { cwd: REPO_ROOT, timeout: 120_000 }, (err, _out, stderr) => (err ? reject(new Error(`pnpm build:agent failed: ${stderr}`)) : resolve()));
  });
  expect(existsSync(BUNDLE)).toBe(true);
  stack = await new TestStack({
    agents: 1, agentCommand: { command: process.execPath, args: [BUNDLE] },
    agentEnv: () => ({ DEVICE_BACKEND: 'nvidia-smi', PATH: `${SMI_DIR}:${process.env.PATH}`, TELEMETRY_INTERVAL_MS: '500' }),
  }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000, configFile: false });
}, 180_000);

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

describe('the bundled agent (dist/gantry-agent.mjs)', () => {
  it('registers, runs a job to SUCCEEDED with its logs, sends the nvidia-smi backend\'s telemetry, and stops cleanly on SIGTERM with its nvidia-smi loop', async () => {
    const node = await client.getNode(stack.nodeName(0));
    expect(node.deviceBackend).toBe('nvidia-smi');
    expect(node.gpus.map((g) => g.model)).toEqual(['NVIDIA H100 80GB HBM3']);
    const { job } = await client.submitJob({ name: 'bundled', tenant: 'team-b', nodes: 1, gpusPerNode: 1, command: ['sh', '-c', 'echo "rank on $(hostname) sees CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"'], workingDir: '' });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(done.state, done.reason).toBe(JobState.JOB_STATE_SUCCEEDED);
    const lines: string[] = [];
    for await (const l of client.streamLogs(job!.id)) lines.push(l.line?.text ?? '');
    expect(lines.join('\n')).toMatch(/sees CUDA_VISIBLE_DEVICES=0/);
    // The PCIe counters of the real H200's `pci -gErrCnt` output, through NATS, Redis and gRPC.
    const gpu = await eventually('a batch with rates from the nvidia-smi backend', async () => {
      const t = await client.getNodeTelemetry(stack.nodeName(0));
      const g = t.latest?.gpus[0];
      return g?.rates && t.latest!.collectorErrors.length === 0 ? g : undefined;
    }, 20_000, 250);
    expect(gpu).toMatchObject({ name: 'NVIDIA H100 80GB HBM3', pcieReplayCount: 0, pcieLinkRecoveryCount: 191 });
    expect(smiLoops()).toHaveLength(1);
    await stack.agents[0]!.stop('SIGTERM');
    expect(stack.agents[0]!.exitCode).toBe(0);
    expect(smiLoops()).toEqual([]);
  });
});

// The agent as it is installed on a GPU host: `pnpm build:agent` bundles it into one file
// (dist/gantry-agent.mjs, what deploy/install ships and the systemd unit runs with plain
// node, no tsx, no node_modules beside it). Run that file as the agent of a real stack: it
// must start, register, take a job and report its exit. A dependency that only works from
// node_modules (a proto file read through __dirname at import, say) breaks the bundle and
// nothing else would notice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JobState } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';

const BUNDLE = join(REPO_ROOT, 'dist', 'gantry-agent.mjs');
let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  await new Promise<void>((resolve, reject) => {
    execFile('pnpm', ['-s', 'build:agent'], { cwd: REPO_ROOT, timeout: 120_000 }, (err, _out, stderr) => (err ? reject(new Error(`pnpm build:agent failed: ${stderr}`)) : resolve()));
  });
  expect(existsSync(BUNDLE)).toBe(true);
  stack = await new TestStack({ agents: 1, agentCommand: { command: process.execPath, args: [BUNDLE] } }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000, configFile: false });
}, 180_000);

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

describe('the bundled agent (dist/gantry-agent.mjs)', () => {
  it('registers, runs a job to SUCCEEDED with its logs, and stops cleanly on SIGTERM', async () => {
    const { job } = await client.submitJob({ name: 'bundled', tenant: 'team-b', nodes: 1, gpusPerNode: 2, command: ['sh', '-c', 'echo "rank on $(hostname) sees CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"'], workingDir: '' });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(done.state, done.reason).toBe(JobState.JOB_STATE_SUCCEEDED);
    const lines: string[] = [];
    for await (const l of client.streamLogs(job!.id)) lines.push(l.line?.text ?? '');
    expect(lines.join('\n')).toMatch(/sees CUDA_VISIBLE_DEVICES=\d,\d/);
    await stack.agents[0]!.stop('SIGTERM');
    expect(stack.agents[0]!.exitCode).toBe(0);
  });
});

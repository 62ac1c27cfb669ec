// The `gantry` CLI as a user runs it (a separate process through its bin), against the real stack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { TestStack } from '../harness/stack.js';

let stack: TestStack;

beforeAll(async () => { stack = await new TestStack({ agents: 2 }).start(); });
afterAll(async () => { await stack?.stop(); });

function gantry(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'libs/cli/bin/gantry.js'), '--addr', stack.gatewayAddr, ...args], { cwd: REPO_ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('gantry CLI', () => {
  it('submits with --wait, follows logs, and exits 0 when the job SUCCEEDED', async () => {
    const r = await gantry('job', 'submit', '--name', 'cli-ok', '--nodes', '2', '--gpus-per-node', '8', '--follow', '--', 'sh', '-c', 'echo hello from $NODE_RANK');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^job j-\S+ SUCCEEDED: all 2 ranks exited with code 0\n$/);
    expect(r.stdout).toContain('hello from 0');
    expect(r.stdout).toContain('hello from 1');
  });

  it('exits 1 with one line when the job fails', async () => {
    const r = await gantry('job', 'submit', '--nodes', '1', '--gpus-per-node', '1', '--wait', '--', 'sh', '-c', 'exit 4');
    expect(r.code).toBe(1);
  });

  it('reads a job file, lists, shows status and nodes as JSON', async () => {
    const file = join(stack.workDir, 'job.yaml');
    writeFileSync(file, 'name: from-file\nnodes: 1\ngpusPerNode: 2\ncommand: [sh, -c, "echo file job"]\n');
    const sub = await gantry('-o', 'json', 'job', 'submit', '-f', file, '--wait');
    expect(sub.code).toBe(0);
    const list = await gantry('-o', 'json', 'job', 'list', '--state', 'succeeded');
    expect(list.code).toBe(0);
    const names = (JSON.parse(list.stdout) as { jobs: { spec: { name: string } }[] }).jobs.map((j) => j.spec.name);
    expect(names).toContain('from-file');
    const nodes = await gantry('node', 'list');
    expect(nodes.code).toBe(0);
    expect(nodes.stdout).toMatch(/node-0\s.*READY/);
    const show = await gantry('node', 'show', 'node-1');
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('NVIDIA H100 80GB HBM3');
  });

  it('exits 1 with one readable line for a server error', async () => {
    const r = await gantry('job', 'status', 'j-nope');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('NOT_FOUND: job j-nope not found');
    const bad = await gantry('job', 'submit', '--nodes', '0', '--', 'true');
    expect(bad.code === 1 || bad.code === 2).toBe(true);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('exits 2 on bad usage', async () => {
    for (const args of [['job', 'frobnicate'], ['job', 'submit', '--nodes', 'many', '--', 'true'], ['--output', 'xml', 'job', 'list'], ['job', 'submit', '-f', '/no/such/file.yaml']]) {
      const r = await gantry(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\s+at /);
    }
  });

  it('cancels a running job', async () => {
    const sub = await gantry('-o', 'json', 'job', 'submit', '--nodes', '1', '--gpus-per-node', '1', '--', 'sleep', '300');
    const id = (JSON.parse(sub.stdout) as { job: { id: string } }).job.id;
    const r = await gantry('job', 'cancel', id);
    expect(r.code).toBe(0);
    const st = await gantry('-o', 'json', 'job', 'status', id);
    expect(JSON.parse(st.stdout).state).toBe('JOB_STATE_CANCELLED');
  });
});

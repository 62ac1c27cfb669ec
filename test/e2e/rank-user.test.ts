// Rank users through the whole stack: agents (root on the test machine) configured with a
// user per tenant run each job's ranks as that user, whose `id -u` comes back in the job's
// logs; a tenant mapped to root is refused and the job fails with the reason. A job may name
// its own user (run_as_user, `gantry job submit --run-as`) where the agent's ranks.specUsers
// allows it for the tenant; otherwise, and for root, the job fails with the agent's reason.
// Needs root, as the agent on a GPU host has.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobState, jobStateName } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';
import { gantry } from '../harness/tools.js';
import { getentPasswd } from '../../services/node-agent/src/runner/rank-user.js';

const root = process.getuid?.() === 0;
let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  if (!root) return;
  const stackRef: { dir?: string } = {};
  stack = new TestStack({
    agents: 1,
    // The agent's settings file: the default user and one tenant's own; root is not allowed.
    agentEnv: () => ({ GANTRY_AGENT_CONFIG: stackRef.dir!, GANTRY_RANKS_ALLOW_ROOT: 'false' }),
  });
  stackRef.dir = join(stack.workDir, 'agent.yaml');
  // Tenant uids may also name 5151:5252 (or root, which allowRoot: false still refuses) in its jobs; no other tenant may name any user.
  writeFileSync(stackRef.dir, 'ranks:\n  user: nobody\n  tenants:\n    uids: "4242:4343"\n    ops: root\n  specUsers:\n    uids: ["5151:5252", root]\n');
  // The state folder sits in the test's temporary folder (0700): let the rank users through.
  chmodSync(stack.workDir, 0o711);
  await stack.start();
  client = new GantryClient({ address: stack.gatewayAddr, configFile: false });
  await client.setSchedulingConfig({ tenants: { default: { weight: 1 }, uids: { weight: 1 }, ops: { weight: 1 } } });
}, 120_000);

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

async function run(tenant: string | undefined, command: string[], runAsUser = '') {
  const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command, runAsUser, ...(tenant && { tenant }) });
  const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
  const lines: string[] = [];
  for await (const r of client.streamLogs(job!.id)) if (r.line) lines.push(r.line.text.trim());
  return { done, lines };
}

describe.skipIf(!root)('ranks run as the user the agent config names for the tenant', () => {
  it('the default user: the rank\'s id -u prints nobody\'s uid', async () => {
    const { done, lines } = await run(undefined, ['sh', '-c', 'id -u; id -g']);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    const nobody = getentPasswd('nobody')!;
    expect(lines).toEqual([String(nobody.uid), String(nobody.gid)]);
  });

  it('a tenant with its own uid:gid', async () => {
    const { done, lines } = await run('uids', ['sh', '-c', 'id -u; id -g']);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(lines).toEqual(['4242', '4343']);
  });

  it('a tenant mapped to root: the rank is refused and the job fails with the reason', async () => {
    const { done } = await run('ops', ['id', '-u']);
    expect(jobStateName(done.state)).toBe('FAILED');
    expect(done.reason).toContain('ranks may not run as root: tenant "ops" maps to "root", uid 0');
  });
});

describe.skipIf(!root)('a job names its own user (run_as_user), as the agent allows it per tenant', () => {
  it('an allowed user: the rank runs as it, and job status says so', async () => {
    const { done, lines } = await run('uids', ['sh', '-c', 'id -u; id -g'], '5151:5252');
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(lines).toEqual(['5151', '5252']);
    const status = await gantry(stack, 'job', 'status', done.id);
    expect(status.stdout).toContain('Run as:     5151:5252\n');
  });

  it('through the CLI: --run-as, the job\'s logs print the uid', async () => {
    const submit = await gantry(stack, 'job', 'submit', '--tenant', 'uids', '--run-as', '5151:5252', '--gpus-per-node', '1', '--workdir', '', '--follow', '--', 'id', '-u');
    expect(submit.code).toBe(0);
    expect(submit.stdout).toContain('[node-rank 0] 5151\n');
  });

  it('a user the tenant may not name: refused, the job fails with the reason', async () => {
    const { done, lines } = await run(undefined, ['id', '-u'], '5151:5252');
    expect(jobStateName(done.state)).toBe('FAILED');
    expect(done.reason).toContain('run_as_user "5151:5252" is not allowed for tenant "default" on this node (ranks.specUsers lists no user for it)');
    expect(lines).toEqual([]);
    const other = await run('uids', ['id', '-u'], '6000');
    expect(other.done.reason).toContain('run_as_user "6000" is not allowed for tenant "uids" on this node (ranks.specUsers.uids: 5151:5252, root)');
  });

  it('root, even listed, without allowRoot: refused with the reason', async () => {
    const { done, lines } = await run('uids', ['id', '-u'], 'root');
    expect(jobStateName(done.state)).toBe('FAILED');
    expect(done.reason).toContain('ranks may not run as root: run_as_user "root" is uid 0 (ranks.allowRoot: true allows it)');
    expect(lines).toEqual([]);
  });

  it('a malformed user is refused at submit, naming the flag', async () => {
    const r = await gantry(stack, 'job', 'submit', '--run-as', 'bad user', '--', 'true');
    expect(r).toMatchObject({ code: 1, stderr: 'gantry: INVALID_ARGUMENT: --run-as must be a user name or uid[:gid], got "bad user"\n' });
  });
});

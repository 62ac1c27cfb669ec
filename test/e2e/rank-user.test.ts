// Rank users through the whole stack: agents (root on the test machine) configured with a
// user per tenant run each job's ranks as that user, whose `id -u` comes back in the job's
// logs; a tenant mapped to root is refused and the job fails with the reason. Needs root, as
// the agent on a GPU host has.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobState, jobStateName } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';
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
  writeFileSync(stackRef.dir, 'ranks:\n  user: nobody\n  tenants:\n    uids: "4242:4343"\n    ops: root\n');
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

async function run(tenant: string | undefined, command: string[]) {
  const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command, ...(tenant && { tenant }) });
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

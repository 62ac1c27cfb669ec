// Retention per tenant through the real services (issue 11): the checkpoint service has
// CHECKPOINT_RETENTION_POLICIES (team-a: keep the newest 1 and delete; "*": keep the newest 1 as
// a dry run). Three jobs write three committed checkpoints each with python/gantry_ckpt.py:
// team-a's job without a policy of its own gets its tenant's (two deleted from disk), team-a's
// job with its own policy (keep 2) overrides it (one deleted), and team-b's job falls to "*"
// (two recorded as dry runs, nothing removed). The tenant comes from the job events.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointClient } from '@gantry/sdk';
import { CheckpointFormat, CheckpointState, JobState, jobStateName, type CheckpointRetention } from '@gantry/proto';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const setup = stackPerTest();
const { CHECKPOINT_STATE_COMMITTED: COMMITTED, CHECKPOINT_STATE_DELETED: DELETED } = CheckpointState;

const POLICIES = { 'team-a': { keepLast: 1, delete: true, gcGraceSeconds: 0 }, '*': { keepLast: 1 } };

/** Three checkpoints save-1..3, each committed through the agent (GANTRY_COMPLETE marker). */
const script = [
  'import os, sys',
  `sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'python'))})`,
  'import gantry_ckpt as g',
  'for step in (1, 2, 3):',
  '    p = g.checkpoint_path("save-%d" % step)',
  '    os.makedirs(p)',
  '    open(os.path.join(p, "weights.bin"), "wb").write(b"x" * 100)',
  '    assert g.commit(p, step, marker=True).status == "COMPLETE"',
].join('\n');

describe('checkpoint retention per tenant', () => {
  it("a job gets its tenant's policy, its own policy overrides it, other tenants get \"*\"", async () => {
    const { stack, client } = await setup({ agents: 1, env: { 'node-agent': { CHECKPOINT_POLL_MS: '250' }, checkpoint: { CHECKPOINT_RETENTION_POLICIES: JSON.stringify(POLICIES) } } });
    await client.setSchedulingConfig({ tenants: { 'team-a': { weight: 1 }, 'team-b': { weight: 1 } } });
    const submit = async (name: string, tenant: string, retention: CheckpointRetention | undefined) => {
      const dir = join(stack.workDir, name);
      // the gateway learns the new tenants within its cache TTL (5 s)
      const { job } = await eventually(`${tenant} accepted`, () => client.submitJob({
        name, tenant, nodes: 1, gpusPerNode: 1, command: ['python3', '-c', script],
        checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: '', retention },
      }).catch(() => undefined), 30_000);
      return { id: job!.id, dir };
    };
    const byTenant = await submit('by-tenant', 'team-a', undefined);
    const own = await submit('own-policy', 'team-a', { keepLast: 2, keepEvery: 0, gcGraceSeconds: 0, delete: true });
    const fallback = await submit('fallback', 'team-b', undefined);
    for (const j of [byTenant, own, fallback]) {
      expect(jobStateName((await waitForJob(client, j.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 90_000)).state)).toBe('SUCCEEDED');
    }
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, ...(stack.internalClientTls && { tls: stack.internalClientTls }) });
    try {
      const states = async (id: string) => Object.fromEntries((await ck.listCheckpoints(id)).map((c) => [c.step, c.state]));

      // team-a, no policy of its own: keep the newest 1, deleted from disk, the events name the tenant's policy
      await eventually('team-a: two deleted', async () => ((await states(byTenant.id))[1] === DELETED && (await states(byTenant.id))[2] === DELETED) || undefined, 60_000);
      expect(await states(byTenant.id)).toEqual({ 1: DELETED, 2: DELETED, 3: COMMITTED });
      expect([1, 2, 3].map((s) => existsSync(join(byTenant.dir, `save-${s}`)))).toEqual([false, false, true]);
      const tenantEvents = (await ck.listCheckpointEvents(byTenant.id)).filter((e) => e.kind === 'deleted');
      expect(tenantEvents).toHaveLength(2);
      for (const e of tenantEvents) expect(e.message).toContain('(policy: tenant team-a)');

      // team-a with its own policy (keep 2): only save-1 goes
      await eventually('own policy: one deleted', async () => (await states(own.id))[1] === DELETED || undefined, 60_000);
      expect(await states(own.id)).toEqual({ 1: DELETED, 2: COMMITTED, 3: COMMITTED });
      expect([1, 2, 3].map((s) => existsSync(join(own.dir, `save-${s}`)))).toEqual([false, true, true]);
      expect((await ck.listCheckpointEvents(own.id)).find((e) => e.kind === 'deleted')!.message).toContain('(policy: job)');

      // team-b: "*" keeps the newest 1 as a dry run: two recorded, nothing removed
      const dry = await eventually('"*": two dry runs', async () => {
        const ev = (await ck.listCheckpointEvents(fallback.id)).filter((e) => e.kind === 'delete-dry-run');
        return ev.length === 2 ? ev : undefined;
      }, 60_000);
      expect(dry.map((e) => e.path).sort()).toEqual([join(fallback.dir, 'save-1'), join(fallback.dir, 'save-2')]);
      for (const e of dry) expect(e.message).toContain('(policy: default (*))');
      expect(await states(fallback.id)).toEqual({ 1: COMMITTED, 2: COMMITTED, 3: COMMITTED });
      expect([1, 2, 3].map((s) => existsSync(join(fallback.dir, `save-${s}`)))).toEqual([true, true, true]);
    } finally {
      ck.close();
    }
  });
});

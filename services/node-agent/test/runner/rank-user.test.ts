// Rank users through the real runner: the agent (root on the test machine) spawns each rank as
// the user its tenant maps to, and the rank's own `id -u` says so; root is refused unless
// allowed; an unknown user or a working folder the user cannot reach fails the rank with the
// reason. Needs root (to create a user and to drop to it), as the agent on a GPU host has.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RankAssignment } from '@gantry/proto';
import { RankRunner } from '../../src/runner/rank-runner.js';
import { StateFile, type RankRecord } from '../../src/runner/state-file.js';
import { getentPasswd, RankUsers, type RankUserPolicy } from '../../src/runner/rank-user.js';
import { loadAgentConfig } from '../../src/config.js';
import { schedulerKeyEnv } from '../helpers/command-keys.js';

const root = process.getuid?.() === 0;
// One per test process: parallel runs must not delete each other's user.
const USER = `gantry-rank-${process.pid}`;
let base: string;
let created = false;

beforeAll(() => {
  if (!root) return;
  // Each state folder sits under this one; 0711 as /var/lib is, so rank users can pass through.
  base = mkdtempSync(join(tmpdir(), 'gantry-rank-user-'));
  chmodSync(base, 0o711);
  if (!getentPasswd(USER)) {
    execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', USER]);
    created = true;
  }
});

afterAll(() => {
  if (created) execFileSync('userdel', [USER]);
});

let seq = 0;
function assignment(tenant: string, command: string[], extra: Partial<RankAssignment> = {}): RankAssignment {
  return { jobId: `j-${++seq}`, attempt: 1, rank: 0, command, env: { GANTRY_TENANT: tenant }, workingDir: '', gpuIndices: [], runAsUser: '', stopGraceSeconds: 1, processes: [], ...extra };
}

/** Runs one rank to its end through a runner with `policy`; its record and its stdout. */
async function run(policy: RankUserPolicy, a: RankAssignment): Promise<{ rec: RankRecord; out: string; outs: string[] }> {
  const dir = mkdtempSync(join(base, 'state-'));
  chmodSync(dir, 0o755);
  const state = new StateFile(dir);
  const runner = new RankRunner(state, pino({ level: 'silent' }), { users: new RankUsers(policy) });
  runner.start();
  try {
    const done = new Promise<void>((resolve) => { runner.onChange = () => { if (runner.running().length === 0) resolve(); }; });
    runner.assign(a);
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('rank did not exit')), 15_000))]);
  } finally {
    runner.stopPolling();
  }
  const rec = new StateFile(dir).state.ranks[`${a.jobId}:1:0`]!;
  const outs = (rec.processes ?? []).map((p) => { try { return readFileSync(join(p.dir, 'stdout.log'), 'utf8'); } catch { return ''; } });
  return { rec, out: outs[0] ?? '', outs };
}

const policy = (p: Partial<RankUserPolicy>): RankUserPolicy => ({ tenants: {}, allowRoot: false, ...p });
const SHOW = ['sh', '-c', 'id -u; id -g; id -G; echo "$HOME $USER"; pwd; touch made-by-rank && echo wrote'];

describe.skipIf(!root)('ranks run as the configured user', () => {
  it('as the tenant\'s user: id -u prints its uid, the rank folder is its own, HOME and USER are its', async () => {
    const u = getentPasswd(USER)!;
    const { rec, out } = await run(policy({ user: 'nobody', tenants: { alpha: USER } }), assignment('alpha', SHOW));
    expect(rec.exitCode).toBe(0);
    const [uid, gid, groups, env, cwd, wrote] = out.trim().split('\n');
    expect(Number(uid)).toBe(u.uid);
    expect(Number(gid)).toBe(u.gid);
    // None of the agent's (root's) supplementary groups came along.
    expect(groups!.split(' ').map(Number)).toEqual([u.gid]);
    expect(env).toBe(`/tmp ${USER}`);
    expect(cwd).toBe(rec.dir);
    expect(wrote).toBe('wrote');
    expect(statSync(join(rec.dir, 'made-by-rank')).uid).toBe(u.uid);
    // Its folder is closed to other users (its output is there); the folder of rank folders is passable, not listable.
    expect(statSync(rec.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(rec.dir, '..')).mode & 0o777).toBe(0o711);
    const other = spawnSync('cat', [join(rec.dir, 'stdout.log')], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(other.stderr).toMatch(/Permission denied/);
    // The wrapper, running as the user too, recorded the exit status in the rank's folder.
    expect(readFileSync(join(rec.dir, 'exit'), 'utf8').trim()).toBe('0');
  });

  it('a tenant not listed gets the default user; uid:gid works without a passwd entry', async () => {
    const nobody = getentPasswd('nobody')!;
    const other = await run(policy({ user: 'nobody', tenants: { alpha: USER } }), assignment('beta', ['id', '-u']));
    expect(Number(other.out.trim())).toBe(nobody.uid);
    const numeric = await run(policy({ tenants: { gamma: '4242:4343' } }), assignment('gamma', ['sh', '-c', 'id -u; id -g']));
    expect(numeric.out.trim().split('\n').map(Number)).toEqual([4242, 4343]);
  });

  it('every process of a per-GPU rank drops to the user', async () => {
    const { rec, outs } = await run(policy({ user: USER }), assignment('alpha', ['id', '-u'], {
      processes: [{ localRank: 0, env: {} }, { localRank: 1, env: {} }],
    }));
    expect(rec.exitCode).toBe(0);
    expect(outs.map((o) => Number(o.trim()))).toEqual([getentPasswd(USER)!.uid, getentPasswd(USER)!.uid]);
  });

  it('refuses root unless allowed', async () => {
    const mapped = await run(policy({ tenants: { ops: 'root' } }), assignment('ops', ['id', '-u']));
    expect(mapped.rec).toMatchObject({ exitCode: 126, message: 'not started: ranks may not run as root: tenant "ops" maps to "root", uid 0 (ranks.allowRoot: true allows it)' });
    const numeric = await run(policy({ user: '0' }), assignment('any', ['id', '-u']));
    expect(numeric.rec.message).toMatch(/^not started: ranks may not run as root: tenant "any" maps to "0", uid 0/);
    // No user configured: the agent's own user, root here, refused too ...
    const unset = await run(policy({}), assignment('any', ['id', '-u']));
    expect(unset.rec.message).toBe('not started: ranks may not run as root: the agent runs as root and no rank user is configured (set ranks.user or ranks.tenants in agent.yaml, or GANTRY_RANK_USER; ranks.allowRoot: true allows root)');
    // ... unless explicitly allowed.
    const allowed = await run(policy({ allowRoot: true }), assignment('any', ['id', '-u']));
    expect(allowed.out.trim()).toBe('0');
  });

  it('fails the rank with the reason for an unknown user or a working folder the user cannot reach', async () => {
    const unknown = await run(policy({ tenants: { alpha: 'no-such-user-x' } }), assignment('alpha', ['true']));
    expect(unknown.rec).toMatchObject({ exitCode: 126, message: 'not started: rank user "no-such-user-x" of tenant "alpha" does not exist on this node' });
    const closed = join(base, 'closed');
    mkdirSync(join(closed, 'work'), { recursive: true });
    chmodSync(closed, 0o700);
    const blocked = await run(policy({ user: USER }), assignment('alpha', ['true'], { workingDir: join(closed, 'work') }));
    expect(blocked.rec.exitCode).toBe(126);
    expect(blocked.rec.message).toBe(`not started: ${USER} (uid ${getentPasswd(USER)!.uid}) cannot reach ${join(closed, 'work')}: ${closed} is mode 0700, owner 0:0`);
  });
});

describe.skipIf(!root)('a user from the job spec (run_as_user), where ranks.specUsers allows it', () => {
  const spec = (tenant: string, user: string, command = ['sh', '-c', 'id -u; id -g']) => assignment(tenant, command, { runAsUser: user });

  it('runs the rank as the spec\'s user when the tenant may name it, by name or by the same uid:gid', async () => {
    const u = getentPasswd(USER)!;
    const p = policy({ user: 'nobody', specUsers: { alpha: [USER, '4242:4343'] } });
    const byName = await run(p, spec('alpha', USER, SHOW));
    expect(byName.rec.exitCode).toBe(0);
    const [uid, gid, , env] = byName.out.trim().split('\n');
    expect([Number(uid), Number(gid)]).toEqual([u.uid, u.gid]);
    expect(env).toBe(`/tmp ${USER}`);
    const numeric = await run(p, spec('alpha', '4242:4343'));
    expect(numeric.out.trim().split('\n').map(Number)).toEqual([4242, 4343]);
    // The same identity written the other way: USER is listed by name, the job gives its uid:gid.
    const same = await run(p, spec('alpha', `${u.uid}:${u.gid}`));
    expect(same.out.trim().split('\n').map(Number)).toEqual([u.uid, u.gid]);
    // Without run_as_user the tenant's mapping applies as before.
    const none = await run(p, assignment('alpha', ['id', '-u']));
    expect(Number(none.out.trim())).toBe(getentPasswd('nobody')!.uid);
  });

  it('refuses a user not listed for the tenant, an unknown user, and root without allowRoot, each with the reason', async () => {
    const p = policy({ user: 'nobody', specUsers: { alpha: [USER, 'root'], beta: ['4242'] } });
    const other = await run(p, spec('gamma', USER));
    expect(other.rec).toMatchObject({ exitCode: 126, message: `not started: run_as_user "${USER}" is not allowed for tenant "gamma" on this node (ranks.specUsers lists no user for it)` });
    const wrongTenant = await run(p, spec('beta', USER));
    expect(wrongTenant.rec.message).toBe(`not started: run_as_user "${USER}" is not allowed for tenant "beta" on this node (ranks.specUsers.beta: 4242)`);
    // uid 4242 is listed, but with the gid of its passwd entry (none: 4242), not 4343.
    const otherGid = await run(p, spec('beta', '4242:4343'));
    expect(otherGid.rec.message).toBe('not started: run_as_user "4242:4343" is not allowed for tenant "beta" on this node (ranks.specUsers.beta: 4242)');
    const unknown = await run(p, spec('alpha', 'no-such-user-x'));
    expect(unknown.rec.message).toBe('not started: run_as_user "no-such-user-x" does not exist on this node');
    // Listed, but root: refused all the same, by name or by uid.
    const rootByName = await run(p, spec('alpha', 'root', ['id', '-u']));
    expect(rootByName.rec).toMatchObject({ exitCode: 126, message: 'not started: ranks may not run as root: run_as_user "root" is uid 0 (ranks.allowRoot: true allows it)' });
    const rootById = await run(p, spec('alpha', '0:0', ['id', '-u']));
    expect(rootById.rec.message).toBe('not started: ranks may not run as root: run_as_user "0:0" is uid 0 (ranks.allowRoot: true allows it)');
    // allowRoot and listed (by name; 0:0 is the same identity): it runs.
    const allowed = await run({ ...p, allowRoot: true }, spec('alpha', '0:0', ['id', '-u']));
    expect(allowed.out.trim()).toBe('0');
  });

  it('an agent without a rank user policy refuses run_as_user instead of ignoring it', async () => {
    const dir = mkdtempSync(join(base, 'state-'));
    const runner = new RankRunner(new StateFile(dir), pino({ level: 'silent' }));
    runner.assign(spec('alpha', 'nobody', ['id', '-u']));
    runner.stopPolling();
    expect(new StateFile(dir).state.ranks[`j-${seq}:1:0`]).toMatchObject({ exitCode: 126, message: 'not started: run_as_user "nobody" is not allowed: this agent has no rank user policy' });
  });
});

describe('ranks in the agent config', () => {
  it('reads ranks.user, per-tenant users and allowRoot from the file and the environment', () => {
    const f = join(mkdtempSync(join(tmpdir(), 'gantry-rank-cfg-')), 'agent.yaml');
    writeFileSync(f, 'node: n0\nstateDir: /tmp/x\nranks:\n  user: gantry-rank\n  tenants:\n    ml-research: gantry-ml\n    vision: "2001:2001"\n');
    expect(loadAgentConfig({ GANTRY_AGENT_CONFIG: f, ...schedulerKeyEnv() }).ranks).toEqual({ user: 'gantry-rank', tenants: { 'ml-research': 'gantry-ml', vision: '2001:2001' }, specUsers: {}, allowRoot: false, gpuIsolation: 'auto' });
    expect(loadAgentConfig({ GANTRY_AGENT_CONFIG: f, GANTRY_RANK_USER: 'nobody', GANTRY_RANKS_ALLOW_ROOT: 'true', ...schedulerKeyEnv() }).ranks).toMatchObject({ user: 'nobody', allowRoot: true });
    expect(loadAgentConfig({ GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: '/tmp/x', ...schedulerKeyEnv() }).ranks).toEqual({ tenants: {}, specUsers: {}, allowRoot: false, gpuIsolation: 'auto' });
  });

  it('reads ranks.specUsers, and names the bad key of a bad one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-rank-cfg-'));
    const cfg = (ranks: string) => {
      const f = join(dir, 'agent.yaml');
      writeFileSync(f, `node: n0\nstateDir: /tmp/x\nranks:\n${ranks}`);
      return () => loadAgentConfig({ GANTRY_AGENT_CONFIG: f, ...schedulerKeyEnv() });
    };
    expect(cfg('  specUsers:\n    ml-research: [alice, "1001:1001"]\n    vision: []\n')().ranks.specUsers).toEqual({ 'ml-research': ['alice', '1001:1001'], vision: [] });
    const f = join(dir, 'agent.yaml');
    expect(cfg('  specUsers:\n    ml-research: [alice, "bad user"]\n')).toThrow(`invalid agent configuration: ranks.specUsers.ml-research.1 in ${f}: must be a user name or uid[:gid], got "bad user"`);
    expect(cfg('  specUsers:\n    ml-research: alice\n')).toThrow(`invalid agent configuration: ranks.specUsers.ml-research in ${f}: must be a list of user names or uid[:gid]`);
    expect(cfg('  specUsers:\n    "a.b": [alice]\n')).toThrow(/ranks\.specUsers\.a\.b in .*: key must be letters, digits, - or _/);
    expect(cfg('  specUsers:\n    ml: ["99999999999"]\n')).toThrow(/ranks\.specUsers\.ml\.0 in .*: must be a user name or uid\[:gid\], got "99999999999"/);
  });

  it('names a bad value and where it came from', () => {
    const env = { GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: '/tmp/x', ...schedulerKeyEnv() };
    expect(() => loadAgentConfig({ ...env, GANTRY_RANK_USER: 'bad user!' })).toThrow(/GANTRY_RANK_USER \(ranks\.user\): must be a user name or uid\[:gid\], got "bad user!"/);
    expect(() => loadAgentConfig({ ...env, GANTRY_RANKS_ALLOW_ROOT: 'yes' })).toThrow(/GANTRY_RANKS_ALLOW_ROOT \(ranks\.allowRoot\): must be true or false/);
  });
});

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

describe('ranks in the agent config', () => {
  it('reads ranks.user, per-tenant users and allowRoot from the file and the environment', () => {
    const f = join(mkdtempSync(join(tmpdir(), 'gantry-rank-cfg-')), 'agent.yaml');
    writeFileSync(f, 'node: n0\nstateDir: /tmp/x\nranks:\n  user: gantry-rank\n  tenants:\n    ml-research: gantry-ml\n    vision: "2001:2001"\n');
    expect(loadAgentConfig({ GANTRY_AGENT_CONFIG: f, ...schedulerKeyEnv() }).ranks).toEqual({ user: 'gantry-rank', tenants: { 'ml-research': 'gantry-ml', vision: '2001:2001' }, allowRoot: false, gpuIsolation: 'auto' });
    expect(loadAgentConfig({ GANTRY_AGENT_CONFIG: f, GANTRY_RANK_USER: 'nobody', GANTRY_RANKS_ALLOW_ROOT: 'true', ...schedulerKeyEnv() }).ranks).toMatchObject({ user: 'nobody', allowRoot: true });
    expect(loadAgentConfig({ GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: '/tmp/x', ...schedulerKeyEnv() }).ranks).toEqual({ tenants: {}, allowRoot: false, gpuIsolation: 'auto' });
  });

  it('names a bad value and where it came from', () => {
    const env = { GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: '/tmp/x', ...schedulerKeyEnv() };
    expect(() => loadAgentConfig({ ...env, GANTRY_RANK_USER: 'bad user!' })).toThrow(/GANTRY_RANK_USER \(ranks\.user\): must be a user name or uid\[:gid\], got "bad user!"/);
    expect(() => loadAgentConfig({ ...env, GANTRY_RANKS_ALLOW_ROOT: 'yes' })).toThrow(/GANTRY_RANKS_ALLOW_ROOT \(ranks\.allowRoot\): must be true or false/);
  });
});

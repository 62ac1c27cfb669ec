// gantry-spawn (native/gantry-spawn.c) and the runner's use of it: what a process gets (argv,
// env, working directory, output files, its own session), how ends and failures to start are
// told, and what the runner does when the spawner is gone. The runner's behaviour through the
// spawner is otherwise launcher.test.ts's, which runs each of its tests both ways.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { RankAssignment } from '@gantry/proto';
import { RankRunner } from '../../src/runner/rank-runner.js';
import { SpawnHelper, type ExitListener } from '../../src/runner/spawn-helper.js';
import { StateFile, processesOf, type RankRecord } from '../../src/runner/state-file.js';
import { executableProblem } from '../../src/config.js';
import { until } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '../../../..');
const SPAWNER = join(ROOT, 'dist', 'gantry-spawn');
const SOURCE = join(ROOT, 'services/node-agent/native/gantry-spawn.c');
const log = pino({ level: 'silent' });
const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-spawn-test-'));

beforeAll(() => {
  if (!existsSync(SPAWNER) || statSync(SPAWNER).mtimeMs < statSync(SOURCE).mtimeMs) {
    const b = spawnSync('pnpm', ['-s', 'build:spawn'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`pnpm build:spawn failed: ${b.stderr}`);
  }
}, 60_000);

function exitOf(): { listener: ExitListener; ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  let listener!: ExitListener;
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => { listener = (code, signal) => resolve({ code, signal }); });
  return { listener, ended };
}

describe('gantry-spawn', () => {
  it('starts a process with its argv, env only, working directory, output files and own session, and tells its exit code', async () => {
    const helper = await SpawnHelper.start(SPAWNER, log);
    try {
      const dir = tmp();
      const { listener, ended } = exitOf();
      const script = 'echo "argv0=$0 a=$1 FOO=$FOO HOME=${HOME-unset}"; pwd; echo err >&2; ps -o sid= -p $$ | tr -d " "; exit 7';
      const outcome = await helper.spawn({ file: '/bin/sh', argv: ['/bin/sh', '-c', script, 'gantry-rank', 'x y'], cwd: dir, env: { FOO: 'bar baz', PATH: process.env.PATH }, stdout: join(dir, 'out'), stderr: join(dir, 'err') }, listener);
      expect(outcome).toMatchObject({ pid: expect.any(Number) });
      const pid = (outcome as { pid: number }).pid;
      expect(await ended).toEqual({ code: 7, signal: null });
      expect(readFileSync(join(dir, 'out'), 'utf8').split('\n')).toEqual(['argv0=gantry-rank a=x y FOO=bar baz HOME=unset', dir, String(pid), '']);
      expect(readFileSync(join(dir, 'err'), 'utf8')).toBe('err\n');
    } finally {
      helper.stop();
    }
  });

  it('tells a signal, and a failure to start by its errno, with no exit after it', async () => {
    const helper = await SpawnHelper.start(SPAWNER, log);
    try {
      const dir = tmp();
      const killed = exitOf();
      await helper.spawn({ file: '/bin/sh', argv: ['sh', '-c', 'kill -TERM $$'], cwd: '', env: {}, stdout: join(dir, 'o'), stderr: join(dir, 'e') }, killed.listener);
      expect(await killed.ended).toEqual({ code: null, signal: 'SIGTERM' });
      let heard = false;
      expect(await helper.spawn({ file: '/bin/sh', argv: ['sh'], cwd: join(dir, 'missing'), env: {}, stdout: join(dir, 'o'), stderr: join(dir, 'e') }, () => { heard = true; }))
        .toEqual({ error: 'spawn /bin/sh ENOENT' });
      expect(await helper.spawn({ file: join(dir, 'o'), argv: ['o'], cwd: '', env: {}, stdout: join(dir, 'o'), stderr: join(dir, 'e') }, () => { heard = true; }))
        .toEqual({ error: `spawn ${join(dir, 'o')} EACCES` });
      expect(await helper.spawn({ file: '/bin/sh', argv: ['sh', '-c', 'true'], cwd: '', env: { BAD: 'a\0b' }, stdout: join(dir, 'o'), stderr: join(dir, 'e') }, () => { heard = true; }))
        .toEqual({ error: 'EINVAL (a NUL byte in the command, environment or paths)' });
      // The spawner still answers after all that.
      const ok = exitOf();
      await helper.spawn({ file: '/bin/true', argv: ['true'], cwd: '', env: {}, stdout: join(dir, 'o'), stderr: join(dir, 'e') }, ok.listener);
      expect(await ok.ended).toEqual({ code: 0, signal: null });
      expect(heard).toBe(false);
    } finally {
      helper.stop();
    }
  });

  it('refuses to start from a file that is not the spawner, and the config says why a path is unusable', async () => {
    await expect(SpawnHelper.start('/bin/true', log)).rejects.toThrow(/rank spawner \/bin\/true: exited \(status 0\)/);
    await expect(SpawnHelper.start('/no/such/gantry-spawn', log)).rejects.toThrow(/rank spawner \/no\/such\/gantry-spawn: spawn \/no\/such\/gantry-spawn ENOENT/);
    expect(executableProblem('dist/gantry-spawn')).toBe('dist/gantry-spawn must be an absolute path (or off)');
    expect(executableProblem('/no/such/gantry-spawn')).toBe('/no/such/gantry-spawn: no such file (build it with pnpm build:spawn)');
    expect(executableProblem(SOURCE)).toBe(`${SOURCE}: not executable`);
    expect(executableProblem(SPAWNER)).toBeUndefined();
  });

  it('leaves its children running when the agent closes it', async () => {
    const helper = await SpawnHelper.start(SPAWNER, log);
    const dir = tmp();
    const outcome = await helper.spawn({ file: '/bin/sh', argv: ['sh', '-c', 'sleep 30'], cwd: '', env: {}, stdout: join(dir, 'o'), stderr: join(dir, 'e') }, () => undefined);
    const pid = (outcome as { pid: number }).pid;
    helper.stop();
    await until('the spawner to exit', () => (existsSync(`/proc/${helper.pid}`) && !readFileSync(`/proc/${helper.pid}/stat`, 'utf8').includes(') Z') ? undefined : true));
    expect(() => process.kill(pid, 0)).not.toThrow();
    process.kill(-pid, 'SIGKILL');
  });
});

describe('the rank runner with gantry-spawn', () => {
  const assignment = (command: string[], rank = 0): RankAssignment => ({
    jobId: 'j-s', attempt: 1, rank, command, workingDir: '', gpuIndices: [0], runAsUser: '', stopGraceSeconds: 1, processes: [],
    env: { GANTRY_NODE_NAME: 'node-1', PATH: process.env.PATH ?? '' },
  });
  const exited = (state: StateFile, rank = 0): RankRecord | undefined => {
    const rec = state.state.ranks[`j-s:1:${rank}`];
    return rec?.phase === 'exited' ? rec : undefined;
  };

  it('answers a repeated assignment and a stop that come while the rank is starting, after it is recorded', async () => {
    const helper = await SpawnHelper.start(SPAWNER, log);
    const state = new StateFile(tmp());
    const runner = new RankRunner(state, log, { spawner: helper });
    runner.start();
    try {
      const first = runner.assign(assignment(['sleep', '30']));
      const again = runner.assign(assignment(['sleep', '30']));
      expect(first).toBeInstanceOf(Promise);
      expect(state.state.ranks['j-s:1:0']).toBeUndefined(); // recorded only once it has a pid
      runner.stop('j-s', 1, 0, 1, 'cancelled');
      expect(await first).toEqual({ ok: true, message: 'started' });
      expect(await again).toEqual({ ok: true, message: 'already running' });
      const rec = await until('the rank to exit', () => exited(state));
      expect(rec).toMatchObject({ signal: 'SIGTERM' });
      expect(processesOf(rec).filter((p) => p.pid > 0)).toHaveLength(1);
    } finally {
      runner.stopPolling();
      helper.stop();
    }
  });

  it('records a command that ends at once after its start, never before', async () => {
    const helper = await SpawnHelper.start(SPAWNER, log);
    const state = new StateFile(tmp());
    const order: string[] = [];
    const runner = new RankRunner(state, log, { spawner: helper, hooks: [{ name: 'order', poststart: () => void order.push('poststart'), exited: () => void order.push('exited') }] });
    runner.start();
    try {
      await Promise.all(Array.from({ length: 20 }, (_, rank) => runner.assign(assignment(['true'], rank))));
      for (let rank = 0; rank < 20; rank++) expect(await until('the rank to exit', () => exited(state, rank))).toMatchObject({ exitCode: 0 });
      expect(order.slice(0, 2)).toEqual(['poststart', expect.any(String)]);
      // Each exit came after its own start: never more exits than starts at any point.
      let balance = 0;
      for (const o of order) expect((balance += o === 'poststart' ? 1 : -1)).toBeGreaterThanOrEqual(0);
    } finally {
      runner.stopPolling();
      helper.stop();
    }
  });

  it('watches the ranks the spawner started by polling when it dies, and forks new ones itself', async () => {
    const helper = await SpawnHelper.start(SPAWNER, log);
    const state = new StateFile(tmp());
    const runner = new RankRunner(state, log, { spawner: helper });
    runner.start();
    try {
      await runner.assign(assignment(['sh', '-c', 'sleep 1; exit 4'], 0));
      process.kill(helper.pid!, 'SIGKILL');
      await until('the spawner to be gone', () => (helper.alive ? undefined : true));
      // The rank, now the child of no one we hear from, is still seen to end (exit file, polled).
      expect(await until('rank 0 to exit', () => exited(state, 0))).toMatchObject({ exitCode: 4 });
      // A new rank is forked by the agent itself.
      expect(await runner.assign(assignment(['sh', '-c', 'exit 5'], 1))).toEqual({ ok: true, message: 'started' });
      expect(await until('rank 1 to exit', () => exited(state, 1))).toMatchObject({ exitCode: 5 });
    } finally {
      runner.stopPolling();
      helper.stop();
    }
  });
});

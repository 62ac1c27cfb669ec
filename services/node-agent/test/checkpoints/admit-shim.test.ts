// Admitted checkpoint flushes on the agent's side (checkpoint.admit_flushes): the checkpoint
// hook hands the shim to the ranks that asked (or refuses them with the reason), agent.yaml's
// admitShim is checked at start, and the rank wrapper preloads the shim into the command only,
// after the job's own LD_PRELOAD. The shim is the real one (pnpm build:admit, built here when
// dist/ lacks it); the wrapper runs in the machine's /bin/sh.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointHook } from '../../src/checkpoints/hook.js';
import { hookContext } from '../../src/runner/hooks.js';
import { WRAPPER_SCRIPT } from '../../src/runner/wrapper.js';
import { sharedObjectProblem } from '../../src/config.js';
import type { RankRecord } from '../../src/runner/state-file.js';

const ROOT = join(import.meta.dirname, '../../../..');
const SHIM = join(ROOT, 'dist', 'libgantry-admit.so');
const SOURCE = join(ROOT, 'services/node-agent/native/gantry-admit.c');
const log = pino({ level: 'silent' });
const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-admit-'));
const rec = (jobId: string, rank = 0): RankRecord => ({ jobId, attempt: 1, rank, pid: 1, dir: '/x', phase: 'running', startedAt: new Date().toISOString(), startReported: true, exitReported: false, processes: [] });

beforeAll(() => {
  if (!existsSync(SHIM) || statSync(SHIM).mtimeMs < statSync(SOURCE).mtimeMs) {
    const b = spawnSync('pnpm', ['-s', 'build:admit'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`pnpm build:admit failed: ${b.stderr}`);
  }
}, 60_000);

describe('the checkpoint hook and admitted flushes', () => {
  const env = (dir: string, admit: boolean) => ({ NODE_RANK: '1', GANTRY_CHECKPOINT_DIR: dir, GANTRY_CHECKPOINT_FORMAT: 'auto', ...(admit && { GANTRY_ADMIT_FLUSHES: '1' }) });

  it('a job that opted in gets GANTRY_ADMIT_PRELOAD; others do not', async () => {
    const hook = new CheckpointHook({ node: 'node-0', stateDir: tmp(), publish: async () => undefined, log, admitShim: SHIM, checkpointAddr: '127.0.0.1:1' });
    await hook.start();
    try {
      expect(hook.prestart(hookContext(rec('job-a'), { env: env(tmp(), true) }))).toMatchObject({ GANTRY_ADMIT_PRELOAD: SHIM, GANTRY_CKPT_TOKEN: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(hook.prestart(hookContext(rec('job-b'), { env: env(tmp(), false) }))).not.toHaveProperty('GANTRY_ADMIT_PRELOAD');
    } finally {
      await hook.shutdown();
    }
  });

  it('refuses the rank, leaving no token behind, when this agent has no shim or no storage admission', async () => {
    const noShim = new CheckpointHook({ node: 'node-0', stateDir: tmp(), publish: async () => undefined, log, checkpointAddr: '127.0.0.1:1' });
    const noAddr = new CheckpointHook({ node: 'node-0', stateDir: tmp(), publish: async () => undefined, log, admitShim: SHIM });
    await noShim.start();
    await noAddr.start();
    try {
      expect(() => noShim.prestart(hookContext(rec('job-c'), { env: env(tmp(), true) }))).toThrow('this agent has no flush admission shim: build it with pnpm build:admit and set admitShim in agent.yaml (GANTRY_ADMIT_SHIM)');
      expect(noShim.state.state.tokens).toEqual({});
      expect(() => noAddr.prestart(hookContext(rec('job-d'), { env: env(tmp(), true) }))).toThrow('this agent has no storage admission: set checkpointAddr in agent.yaml (GANTRY_CHECKPOINT_ADDR)');
    } finally {
      await noShim.shutdown();
      await noAddr.shutdown();
    }
  });

  it('admitShim must be an absolute path to an ELF shared object', () => {
    expect(sharedObjectProblem(SHIM)).toBeUndefined();
    expect(sharedObjectProblem('dist/libgantry-admit.so')).toMatch(/must be an absolute path/);
    expect(sharedObjectProblem('/nonexistent/libgantry-admit.so')).toBe('/nonexistent/libgantry-admit.so: no such file (build it with pnpm build:admit)');
    const text = join(tmp(), 'not-elf.so');
    writeFileSync(text, 'hello');
    expect(sharedObjectProblem(text)).toMatch(/is not an ELF shared object/);
    expect(sharedObjectProblem(tmp())).toMatch(/is not a file/);
  });
});

describe('the rank wrapper preloads the shim into the command only', () => {
  /** Runs the wrapper around `sh -c script`; returns what the command printed. */
  function wrapped(env: Record<string, string>, script: string): string {
    const dir = tmp();
    const r = spawnSync('/bin/sh', ['-c', WRAPPER_SCRIPT, 'gantry-rank', '/bin/sh', '-c', script], { env: { PATH: '/usr/bin:/bin', GANTRY_EXIT_FILE: join(dir, 'exit'), ...env }, encoding: 'utf8' });
    expect(readFileSync(join(dir, 'exit'), 'utf8')).toBe('0\n');
    return r.stdout;
  }
  // The command's own maps and its parent's (the wrapper shell).
  const probe = 'echo "LD_PRELOAD=${LD_PRELOAD-unset}"; grep -c libgantry-admit /proc/$$/maps || true; grep -c libgantry-admit /proc/$PPID/maps || true';

  it('after the job\'s own LD_PRELOAD, and not into the wrapper shell', () => {
    const libm = spawnSync('/bin/sh', ['-c', 'ldconfig -p | sed -n "s/.*libm.so.6 .*=> //p" | head -1'], { encoding: 'utf8' }).stdout.trim();
    const [preload, inCommand, inWrapper] = wrapped({ GANTRY_ADMIT_PRELOAD: SHIM, ...(libm && { LD_PRELOAD: libm }) }, probe).trim().split('\n');
    expect(preload).toBe(`LD_PRELOAD=${libm ? `${libm}:` : ''}${SHIM}`);
    expect(Number(inCommand)).toBeGreaterThan(0);
    expect(inWrapper).toBe('0');
  });

  it('a job that did not opt in is not preloaded', () => {
    expect(wrapped({}, probe).trim().split('\n')).toEqual(['LD_PRELOAD=unset', '0', '0']);
  });
});

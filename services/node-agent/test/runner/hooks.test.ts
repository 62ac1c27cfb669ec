// Rank hooks with real processes: the order the runner calls them in, variables a prestart
// hook adds, a refusing prestart, stop, and poststart(restored) for a re-adopted rank.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { RankAssignment } from '@gantry/proto';
import { RankRunner } from '../../src/runner/rank-runner.js';
import { StateFile, type RankRecord } from '../../src/runner/state-file.js';
import type { RankHook, RankHookContext } from '../../src/runner/hooks.js';
import { until } from '../helpers/fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-hooks-test-'));
const log = pino({ level: 'silent' });

const assignment = (command: string[], extra: Partial<RankAssignment> = {}): RankAssignment => ({
  jobId: 'j-h', attempt: 1, rank: 0, command, workingDir: '', gpuIndices: [0], runAsUser: '', stopGraceSeconds: 1, env: { NODE_RANK: '0', GANTRY_NODE_NAME: 'n' }, processes: [], ...extra,
});

const exited = (state: StateFile): RankRecord | undefined => {
  const rec = state.state.ranks['j-h:1:0'];
  return rec?.phase === 'exited' ? rec : undefined;
};

function recorder(calls: string[], extra: Partial<RankHook> = {}): RankHook {
  const at = (point: string) => (ctx: RankHookContext) => { calls.push(`${point}${ctx.restored ? '(restored)' : ''}${ctx.env ? ' env' : ''}`); };
  return { name: 'rec', prestart: (ctx) => { at('prestart')(ctx); return { HOOK_VAR: 'from-hook', NODE_RANK: 'ignored' }; }, poststart: at('poststart'), stop: (ctx, reason) => { calls.push(`stop ${reason}`); void ctx; }, exited: at('exited'), ...extra };
}

describe.concurrent('rank hooks', () => {
  it('prestart adds variables (not over the assignment), then poststart, then exited, in that order', async () => {
    const state = new StateFile(tmp());
    const calls: string[] = [];
    const runner = new RankRunner(state, log, { hooks: [recorder(calls)] });
    runner.start();
    try {
      runner.assign(assignment(['sh', '-c', 'echo "$HOOK_VAR $NODE_RANK"']));
      const rec = await until('exit', () => exited(state));
      expect(readFileSync(join(rec.dir, 'stdout.log'), 'utf8').trim()).toBe('from-hook 0');
      expect(calls).toEqual(['prestart env', 'poststart env', 'exited']);
    } finally {
      runner.stopPolling();
    }
  });

  it('a prestart hook that throws refuses the start: the rank fails with its reason and exited still runs', async () => {
    const state = new StateFile(tmp());
    const calls: string[] = [];
    const runner = new RankRunner(state, log, { hooks: [recorder(calls, { prestart: () => { throw new Error('no token'); } })] });
    runner.start();
    try {
      expect(runner.assign(assignment(['true']))).toEqual({ ok: true, message: 'failed to start' });
      expect(exited(state)).toMatchObject({ exitCode: 127, error: 'not started: no token' });
      expect(calls).toEqual(['exited']);
    } finally {
      runner.stopPolling();
    }
  });

  it('stop runs before the signal; a hook that throws elsewhere does not stop the rank or the other hooks', async () => {
    const state = new StateFile(tmp());
    const calls: string[] = [];
    const broken: RankHook = { name: 'broken', poststart: () => { throw new Error('boom'); } };
    const runner = new RankRunner(state, log, { hooks: [broken, recorder(calls)] });
    runner.start();
    try {
      runner.assign(assignment(['sleep', '30']));
      runner.stop('j-h', 1, 0, 1, 'cancelled');
      await until('exit', () => exited(state));
      expect(calls).toEqual(['prestart env', 'poststart env', 'stop cancelled', 'exited']);
    } finally {
      runner.stopPolling();
    }
  });

  it('a restarted agent calls poststart(restored) for each rank it re-adopts, then exited once it ends', async () => {
    const dir = tmp();
    const first = new RankRunner(new StateFile(dir), log, { hooks: [] });
    first.start();
    first.assign(assignment(['sleep', '1']));
    first.stopPolling();
    const calls: string[] = [];
    const state = new StateFile(dir);
    const second = new RankRunner(state, log, { hooks: [recorder(calls)] });
    second.start();
    try {
      expect(calls).toEqual(['poststart(restored)']);
      await until('exit', () => exited(state));
      expect(calls).toEqual(['poststart(restored)', 'exited']);
    } finally {
      second.stopPolling();
    }
  });
});

// The rank wrapper's watchdog, run for real under /bin/sh: a rank outlives its agent for the
// partition grace period and no longer, and the wrapper still records how it ended.
import { processGroupMembers } from '../../../../test/harness/process.js';
import { describe, expect, it } from 'vitest';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AgentBeat } from '../../src/runner/beat.js';
import { beatContent, MIN_SILENCE_MS, WRAPPER_SCRIPT, wrapperEnv } from '../../src/runner/wrapper.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-watchdog-test-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
  return Date.now() - start;
}

/** Starts a wrapped rank as the agent does (own process group) with a raw wrapper environment. */
function startRank(command: string[], env: Record<string, string>) {
  const child = spawn('/bin/sh', ['-c', WRAPPER_SCRIPT, 'gantry-rank', ...command], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH, ...env } });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const pgid = child.pid!;
  const cleanup = () => { try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ } };
  return { pgid, exited, cleanup };
}

function silentAgent(dir: string, silenceMs: number, stopGraceSeconds: number): Record<string, string> {
  const beatFile = join(dir, 'agent-beat');
  writeFileSync(beatFile, beatContent(Date.now())); // one beat, then the agent "dies"
  return { GANTRY_EXIT_FILE: join(dir, 'exit'), GANTRY_AGENT_BEAT_FILE: beatFile, GANTRY_AGENT_SILENCE_MS: String(silenceMs), GANTRY_STOP_GRACE_SECONDS: String(stopGraceSeconds) };
}

describe.concurrent('rank watchdog', () => {
  it('stops the whole process group with SIGTERM once the agent is silent past the grace, and records the status', async () => {
    const dir = tmp();
    // The job's PATH lacks the system folders: the watchdog must still find sleep.
    const env = { ...silentAgent(dir, 1_000, 5), PATH: '/nonexistent' };
    const rank = startRank(['/bin/sh', '-c', `PATH=${process.env.PATH}; sleep 300 & wait`], env);
    try {
      await until('the forked child', () => processGroupMembers(rank.pgid).length >= 4, 5_000); // wrapper, watchdog, sh, sleep
      await sleep(1_000);
      expect(processGroupMembers(rank.pgid).length).toBeGreaterThanOrEqual(4); // not before the grace
      const took = await until('the process group gone', () => processGroupMembers(rank.pgid).length === 0, 10_000);
      expect(took).toBeLessThan(5_000); // SIGTERM sufficed: no wait for the 5 s stop grace
      expect(readFileSync(join(dir, 'exit'), 'utf8').trim()).toBe('143');
      expect(existsSync(join(dir, 'exit.orphaned'))).toBe(true);
    } finally {
      rank.cleanup();
    }
  });

  it('escalates to SIGKILL after the stop grace when the rank ignores SIGTERM, leaving nothing behind', async () => {
    const dir = tmp();
    const rank = startRank(['sh', '-c', 'trap "" TERM; sleep 300 & wait'], silentAgent(dir, 1_000, 2));
    try {
      await until('the forked child', () => processGroupMembers(rank.pgid).length >= 4, 5_000);
      const start = Date.now();
      await until('the process group gone', () => processGroupMembers(rank.pgid).length === 0, 15_000);
      expect(Date.now() - start).toBeGreaterThanOrEqual(2_000); // silence, then the whole stop grace
      expect(readFileSync(join(dir, 'exit'), 'utf8').trim()).toBe('137');
    } finally {
      rank.cleanup();
    }
  });

  it('leaves the rank alone while the agent beats, including across a restart shorter than the grace', async () => {
    const dir = tmp();
    const env = silentAgent(dir, 3_000, 1);
    const beat = new AgentBeat(env.GANTRY_AGENT_BEAT_FILE!, pino({ level: 'silent' }));
    beat.start();
    const rank = startRank(['sh', '-c', 'sleep 7; exit 3'], env);
    try {
      await sleep(1_500);
      beat.stop(); // the agent dies ...
      await sleep(2_000);
      beat.start(); // ... and a new one starts within the grace
      const { code } = await rank.exited;
      expect(code).toBe(3);
      expect(readFileSync(join(dir, 'exit'), 'utf8').trim()).toBe('3');
      expect(existsSync(join(dir, 'exit.orphaned'))).toBe(false);
      // The watchdog went with the wrapper (its last `sleep 1` may take a moment).
      await until('the watchdog gone', () => processGroupMembers(rank.pgid).length === 0, 2_000);
    } finally {
      beat.stop();
      rank.cleanup();
    }
  });

  it('does not hold up the wrapper: a quick command exits at once with its status', () => {
    const dir = tmp();
    const start = Date.now();
    let status = 0;
    try {
      execFileSync('/bin/sh', ['-c', WRAPPER_SCRIPT, 'gantry-rank', 'sh', '-c', 'exit 5'], { env: { PATH: process.env.PATH, ...silentAgent(dir, 60_000, 1) } });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status).toBe(5);
    expect(Date.now() - start).toBeLessThan(900); // not even one watchdog poll
    expect(readFileSync(join(dir, 'exit'), 'utf8').trim()).toBe('5');
  });
});

describe('wrapper environment', () => {
  it('carries the grace (never below a few missed beats) and the stop grace, only when the agent beats', () => {
    expect(wrapperEnv({ exitFile: '/s/exit', partitionGraceMs: 900_000 })).toEqual({ GANTRY_EXIT_FILE: '/s/exit', GANTRY_AGENT_BEAT_FILE: '', GANTRY_AGENT_SILENCE_MS: '', GANTRY_STOP_GRACE_SECONDS: '', GANTRY_DEVICE_CGROUP: '' });
    expect(wrapperEnv({ exitFile: '/s/exit', beatFile: '/s/agent-beat', partitionGraceMs: 900_000, stopGraceSeconds: 30 })).toEqual({
      GANTRY_EXIT_FILE: '/s/exit', GANTRY_AGENT_BEAT_FILE: '/s/agent-beat', GANTRY_AGENT_SILENCE_MS: '900000', GANTRY_STOP_GRACE_SECONDS: '30', GANTRY_DEVICE_CGROUP: '',
    });
    expect(wrapperEnv({ exitFile: 'e', beatFile: 'b', partitionGraceMs: 0, stopGraceSeconds: 1.5 })).toMatchObject({ GANTRY_AGENT_SILENCE_MS: String(MIN_SILENCE_MS), GANTRY_STOP_GRACE_SECONDS: '2' });
    expect(wrapperEnv({ exitFile: 'e', beatFile: 'b', partitionGraceMs: 5_000 })).toMatchObject({ GANTRY_STOP_GRACE_SECONDS: '10' });
    expect(wrapperEnv({ exitFile: 'e', beatFile: 'b', partitionGraceMs: 5_000, stopGraceSeconds: Number.NaN })).toMatchObject({ GANTRY_STOP_GRACE_SECONDS: '10' });
  });
});

describe('agent beat file', () => {
  it('changes on every beat, is rewritten in place at a fixed size, and comes back when deleted', () => {
    const dir = tmp();
    const path = join(dir, 'agent-beat');
    let now = 1_733_090_000_000;
    const beat = new AgentBeat(path, pino({ level: 'silent' }), () => now);
    beat.beat();
    const first = readFileSync(path, 'utf8');
    now += 1_000;
    beat.beat();
    const second = readFileSync(path, 'utf8');
    expect(second).not.toBe(first);
    expect(second.length).toBe(first.length);
    expect(second).toBe('0001733090001000\n');
    rmSync(path);
    now += 1_000;
    beat.beat();
    expect(readFileSync(path, 'utf8')).toBe('0001733090002000\n');
  });

  it('survives an unwritable folder (logs once) and writes again once it can', () => {
    const beat = new AgentBeat(join(tmp(), 'missing', 'agent-beat'), pino({ level: 'silent' }));
    expect(() => beat.beat()).not.toThrow();
  });
});

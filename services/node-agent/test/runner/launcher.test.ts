// Node ranks with one process per GPU, with real processes: each process gets its own
// environment, the first failure stops the others and is the rank's exit, a restarted agent
// re-adopts every process, and log lines say which process wrote them. Also what a rank that
// cannot start says: the missing command or working directory, never the wrapper's name.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { JetStreamClient } from '@nats-io/jetstream';
import { LocalProcess, LogBatch, type RankAssignment } from '@gantry/proto';
import { RankRunner, type RankRunnerOptions } from '../../src/runner/rank-runner.js';
import { SpawnHelper } from '../../src/runner/spawn-helper.js';
import { StateFile, processesOf, type RankRecord } from '../../src/runner/state-file.js';
import { RankReporter } from '../../src/reporting/rank-reporter.js';
import { beatContent } from '../../src/runner/wrapper.js';
import { until } from '../helpers/fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-launcher-test-'));
const ROOT = join(import.meta.dirname, '../../../..');
const SPAWNER = join(ROOT, 'dist', 'gantry-spawn');
const SPAWNER_SOURCE = join(ROOT, 'services/node-agent/native/gantry-spawn.c');

beforeAll(() => {
  if (!existsSync(SPAWNER) || statSync(SPAWNER).mtimeMs < statSync(SPAWNER_SOURCE).mtimeMs) {
    const b = spawnSync('pnpm', ['-s', 'build:spawn'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`pnpm build:spawn failed: ${b.stderr}`);
  }
}, 60_000);

// Every test runs twice: with the ranks forked by the agent itself, and by gantry-spawn (one
// spawner per runner, as one per agent process).
const MODES = [{ mode: 'forked by the agent', spawner: false }, { mode: 'forked by gantry-spawn', spawner: true }];

async function newRunner(spawner: boolean, state: StateFile, opts: RankRunnerOptions = {}): Promise<{ runner: RankRunner; end: () => void }> {
  const helper = spawner ? await SpawnHelper.start(SPAWNER, log) : undefined;
  const runner = new RankRunner(state, log, { ...opts, spawner: helper });
  return { runner, end: () => { runner.stopPolling(); helper?.stop(); } };
}
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the scheduler sends for a per-GPU node rank 1 of a job whose node rank 0 has 4 GPUs. */
function perGpu(command: string[], gpus: number[], extra: Partial<RankAssignment> = {}): RankAssignment {
  return {
    jobId: 'j-1', attempt: 1, rank: 1, command, workingDir: '', gpuIndices: gpus, runAsUser: '', stopGraceSeconds: 1,
    env: { WORLD_SIZE: String(4 + gpus.length), LOCAL_WORLD_SIZE: String(gpus.length), NODE_RANK: '1', GANTRY_NODE_NAME: 'node-1' },
    processes: gpus.map((gpu, local) => LocalProcess.create({ localRank: local, env: { RANK: String(4 + local), LOCAL_RANK: String(local), CUDA_VISIBLE_DEVICES: String(gpu) } })),
    ...extra,
  };
}

function exited(state: StateFile): RankRecord | undefined {
  const rec = state.state.ranks['j-1:1:1'];
  return rec?.phase === 'exited' ? rec : undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.concurrent.each(MODES)('per-GPU node ranks ($mode)', ({ spawner }) => {
  it('start one process per GPU, each with its RANK, LOCAL_RANK and one GPU, and end 0 when all succeed', async () => {
    const state = new StateFile(tmp());
    const { runner, end } = await newRunner(spawner, state);
    runner.start();
    try {
      const printEnv = 'echo "RANK=$RANK LOCAL_RANK=$LOCAL_RANK CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES WORLD_SIZE=$WORLD_SIZE NODE_RANK=$NODE_RANK"';
      expect(await runner.assign(perGpu(['sh', '-c', printEnv], [5, 6, 7]))).toEqual({ ok: true, message: 'started' });
      const rec = await until('the rank to exit', () => exited(state));
      expect(rec).toMatchObject({ exitCode: 0, signal: '', perGpu: true });
      const procs = processesOf(rec);
      expect(procs.map((p) => p.local)).toEqual([0, 1, 2]);
      expect(rec.pid).toBe(procs[0]!.pid);
      expect(procs.map((p) => readFileSync(join(p.dir, 'stdout.log'), 'utf8').trim())).toEqual([
        'RANK=4 LOCAL_RANK=0 CUDA_VISIBLE_DEVICES=5 WORLD_SIZE=7 NODE_RANK=1',
        'RANK=5 LOCAL_RANK=1 CUDA_VISIBLE_DEVICES=6 WORLD_SIZE=7 NODE_RANK=1',
        'RANK=6 LOCAL_RANK=2 CUDA_VISIBLE_DEVICES=7 WORLD_SIZE=7 NODE_RANK=1',
      ]);
    } finally {
      end();
    }
  });

  it('stop the other processes at the first failure, and report that process\'s exit and error', async () => {
    const state = new StateFile(tmp());
    const { runner, end } = await newRunner(spawner, state);
    runner.start();
    try {
      // Local rank 1 fails; the others would wait for it forever.
      const cmd = 'if [ "$LOCAL_RANK" = 1 ]; then sleep 0.3; echo "ValueError: bad shard" >&2; exit 3; fi; exec sleep 300';
      await runner.assign(perGpu(['sh', '-c', cmd], [0, 1, 2]));
      const pids = processesOf(state.state.ranks['j-1:1:1']!).map((p) => p.pid);
      const rec = await until('the rank to exit', () => exited(state));
      expect(rec).toMatchObject({ exitCode: 3, signal: '', error: 'local-rank 1: ValueError: bad shard' });
      expect(processesOf(rec).map((p) => p.status)).toEqual([143, 3, 143]);
      for (const pid of pids) expect(pidAlive(-pid)).toBe(false);
    } finally {
      end();
    }
  });

  it('are re-adopted whole by a restarted agent, which reports the exit once every process has ended', async () => {
    const state = new StateFile(tmp());
    const { runner: first, end: endFirst } = await newRunner(spawner, state);
    first.start();
    await first.assign(perGpu(['sh', '-c', 'trap "exit 0" TERM; echo ready; sleep 300 & wait'], [0, 1]));
    endFirst(); // the agent (and its spawner) is gone; its processes run on
    const pids = processesOf(state.state.ranks['j-1:1:1']!).map((p) => p.pid);
    // A SIGTERM before the trap is set would be a failure, not the clean exit this test wants.
    await until('both processes to have set their trap', () => processesOf(state.state.ranks['j-1:1:1']!).every((p) => {
      try {
        return readFileSync(join(p.dir, 'stdout.log'), 'utf8').includes('ready');
      } catch {
        return false;
      }
    }) || undefined);
    const restarted = new StateFile(state.dir);
    const { runner: second, end: endSecond } = await newRunner(spawner, restarted);
    second.start();
    try {
      expect(second.running().map((r) => r.rank)).toEqual([1]);
      process.kill(-pids[0]!, 'SIGTERM'); // one process ends (successfully) while the other runs
      await sleep(1_200);
      expect(restarted.state.ranks['j-1:1:1']!.phase).toBe('running');
      second.stop('j-1', 1, 1, 1, 'job cancelled');
      const rec = await until('the rank to exit', () => exited(restarted));
      expect(rec).toMatchObject({ exitCode: 0 });
      expect(processesOf(rec).every((p) => p.phase === 'exited')).toBe(true);
    } finally {
      endSecond();
      for (const pid of pids) try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });

  it('are stopped process by process by their wrappers when the agent stays silent', async () => {
    const dir = tmp();
    const beatFile = join(dir, 'agent-beat');
    writeFileSync(beatFile, beatContent(Date.now())); // never rewritten: the agent is "gone"
    const state = new StateFile(dir);
    const { runner, end } = await newRunner(spawner, state, { beatFile, partitionGraceMs: 0 });
    runner.start();
    try {
      await runner.assign(perGpu(['sh', '-c', 'sleep 300 & wait'], [0, 1]));
      const rec = await until('the rank to exit', () => exited(state), 15_000);
      expect(rec).toMatchObject({ signal: 'SIGTERM', message: 'stopped by its wrapper: the agent was gone for longer than the partition grace period' });
      for (const p of processesOf(rec)) expect(readFileSync(join(p.dir, 'exit'), 'utf8').trim()).toBe('143');
    } finally {
      end();
    }
  });

  it('ship each process\'s lines with its LOCAL_RANK and its own sequence numbers', async () => {
    const state = new StateFile(tmp());
    const { runner, end } = await newRunner(spawner, state);
    runner.start();
    try {
      await runner.assign(perGpu(['sh', '-c', 'echo "hello from $LOCAL_RANK"; echo "second from $LOCAL_RANK"'], [0, 1]));
      await until('the rank to exit', () => exited(state));
    } finally {
      end();
    }
    const published: { subject: string; msgID: string; batch?: LogBatch }[] = [];
    const js = {
      publish: async (subject: string, data: Uint8Array, opts: { msgID: string }) => {
        published.push({ subject, msgID: opts.msgID, batch: subject.includes('.logs.') ? LogBatch.decode(data) : undefined });
        return { seq: published.length, duplicate: false, stream: 's' };
      },
    } as unknown as JetStreamClient;
    await new RankReporter('node-1', js, state, log).flush();
    const lines = published.flatMap((p) => p.batch?.lines.map((l) => ({ local: l.localRank, seq: l.seq, text: l.text, id: p.msgID })) ?? []);
    expect(lines).toEqual([
      { local: 0, seq: 1, text: 'hello from 0', id: 'j-1.1.1.l0.stdout.1-2' },
      { local: 0, seq: 2, text: 'second from 0', id: 'j-1.1.1.l0.stdout.1-2' },
      { local: 1, seq: 1, text: 'hello from 1', id: 'j-1.1.1.l1.stdout.1-2' },
      { local: 1, seq: 2, text: 'second from 1', id: 'j-1.1.1.l1.stdout.1-2' },
    ]);
    expect(state.state.ranks['j-1:1:1']).toMatchObject({ startReported: true, exitReported: true });
  });
});

describe.concurrent.each(MODES)('a rank that cannot start ($mode)', ({ spawner }) => {
  async function run(a: RankAssignment): Promise<{ rec: RankRecord; stderr: string }> {
    const state = new StateFile(tmp());
    const { runner, end } = await newRunner(spawner, state);
    runner.start();
    try {
      await runner.assign(a);
      const rec = await until('the rank to exit', () => exited(state));
      let stderr = '';
      try { stderr = readFileSync(join(rec.dir, 'stderr.log'), 'utf8'); } catch { /* never started */ }
      return { rec, stderr };
    } finally {
      end();
    }
  }
  const perNode = (command: string[], extra: Partial<RankAssignment> = {}) => ({ ...perGpu(command, [0]), processes: [], ...extra });

  it('names the command that is not found, not the wrapper', async () => {
    const { rec, stderr } = await run(perNode(['torchrun-not-installed', 'train.py']));
    expect(rec.exitCode).toBe(127);
    expect(rec.error).toBe('cannot start torchrun-not-installed: command not found on node-1');
    expect(stderr).toMatch(/^gantry: cannot start torchrun-not-installed: command not found on node-1 \(PATH=.+\)\n$/);
    expect(stderr).not.toContain('gantry-rank');
  });

  it('says when a path given as the command is not there or not executable', async () => {
    const dir = tmp();
    expect((await run(perNode([join(dir, 'train.sh')]))).rec).toMatchObject({ exitCode: 127, error: `cannot start ${join(dir, 'train.sh')}: no such file on node-1` });
    expect((await run(perNode([dir]))).rec).toMatchObject({ exitCode: 126, error: `cannot start ${dir}: not an executable file on node-1` });
  });

  it('says which working directory is missing on which node', async () => {
    const { rec } = await run(perNode(['true'], { workingDir: '/no/such/dir' }));
    expect(rec).toMatchObject({ exitCode: 127, error: 'working directory /no/such/dir does not exist on node-1' });
  });

  it('per GPU, names the process', async () => {
    const { rec } = await run(perGpu(['no-such-trainer'], [0, 1]));
    expect(rec.exitCode).toBe(127);
    // Both processes fail at once: the error names whichever failed first.
    expect(rec.error).toMatch(/^local-rank [01]: cannot start no-such-trainer: command not found/);
  });
});

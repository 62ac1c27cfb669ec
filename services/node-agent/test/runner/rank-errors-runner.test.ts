// The runner with real rank processes: the error a failed rank leaves behind ends up in its
// record (what the reporter sends and a restarted agent re-sends), and a rank whose agent
// stays silent is stopped by its own wrapper.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { RankAssignment } from '@gantry/proto';
import { RankRunner, type RankRunnerOptions } from '../../src/runner/rank-runner.js';
import { StateFile, type RankRecord } from '../../src/runner/state-file.js';
import { beatContent } from '../../src/runner/wrapper.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-runner-test-'));

function assignment(command: string[], extra: Partial<RankAssignment> = {}): RankAssignment {
  return { jobId: 'j-1', attempt: 1, rank: 0, command, env: {}, workingDir: '', gpuIndices: [], runAsUser: '', stopGraceSeconds: 1, processes: [], ...extra };
}

/** Runs one rank to its end and returns its record as saved in the state file. */
async function runToExit(a: RankAssignment, opts: RankRunnerOptions = {}, timeoutMs = 10_000): Promise<RankRecord> {
  const state = new StateFile(tmp());
  const runner = new RankRunner(state, pino({ level: 'silent' }), opts);
  runner.start();
  try {
    const done = new Promise<void>((resolve) => { runner.onChange = () => { if (runner.running().length === 0) resolve(); }; });
    expect(runner.assign(a)).toEqual({ ok: true, message: 'started' });
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('rank did not exit')), timeoutMs))]);
  } finally {
    runner.stopPolling();
  }
  return new StateFile(state.dir).state.ranks['j-1:1:0']!;
}

const TORCH_ERROR = '{"message": {"message": "ValueError: bad batch", "extraInfo": {"py_callstack": "Traceback ...", "timestamp": "1733090000"}}}';

describe.concurrent('rank errors through the runner', () => {
  it('reads the torchelastic error file the rank wrote to $TORCHELASTIC_ERROR_FILE', async () => {
    const rec = await runToExit(assignment(['sh', '-c', `printf '%s' '${TORCH_ERROR}' > "$TORCHELASTIC_ERROR_FILE"; echo "RuntimeError: not this one" >&2; exit 1`]));
    expect(rec).toMatchObject({ exitCode: 1, error: 'ValueError: bad batch', errorTime: new Date(1733090000_000).toISOString() });
    expect(rec.errorFile).toBe(join(rec.dir, 'error.json'));
  });

  it('falls back to the last exception line of stderr, dated by the exit', async () => {
    const rec = await runToExit(assignment(['sh', '-c', 'echo "Traceback (most recent call last):" >&2; echo "torch.distributed.DistBackendError: NCCL communicator was aborted" >&2; echo bye >&2; kill -TERM $$']));
    expect(rec).toMatchObject({ signal: 'SIGTERM', error: 'torch.distributed.DistBackendError: NCCL communicator was aborted', errorTime: rec.finishedAt });
  });

  it('records no error for a rank that succeeded, whatever its stderr says', async () => {
    const rec = await runToExit(assignment(['sh', '-c', 'echo "ValueError: handled and logged" >&2; exit 0']));
    expect(rec.exitCode).toBe(0);
    expect(rec.error).toBeUndefined();
  });

  it('reads the error file the job chose (relative to its working directory), but not one left by an earlier run', async () => {
    const work = tmp();
    const fresh = await runToExit(assignment(['sh', '-c', `printf '%s' '${TORCH_ERROR}' > own.json; exit 2`], { workingDir: work, env: { TORCHELASTIC_ERROR_FILE: 'own.json' } }));
    expect(fresh).toMatchObject({ errorFile: join(work, 'own.json'), error: 'ValueError: bad batch' });

    const shared = join(tmp(), 'shared');
    mkdirSync(shared);
    writeFileSync(join(shared, 'err.json'), TORCH_ERROR);
    utimesSync(join(shared, 'err.json'), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    const stale = await runToExit(assignment(['sh', '-c', 'echo "OSError: disk quota exceeded" >&2; exit 2'], { env: { TORCHELASTIC_ERROR_FILE: join(shared, 'err.json') } }));
    expect(stale.error).toBe('OSError: disk quota exceeded');
  });

  it('lets the wrapper stop a rank whose agent stays silent, and says so when the exit is recorded', async () => {
    const dir = tmp();
    const beatFile = join(dir, 'agent-beat');
    writeFileSync(beatFile, beatContent(Date.now())); // never rewritten: the agent is "gone"
    const started = Date.now();
    // The job's own environment cannot switch its watchdog off.
    const env = { GANTRY_AGENT_BEAT_FILE: '', GANTRY_AGENT_SILENCE_MS: '86400000' };
    const rec = await runToExit(assignment(['sh', '-c', 'sleep 300 & wait'], { stopGraceSeconds: 1, env }), { beatFile, partitionGraceMs: 0 }, 15_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000); // the floor on tolerated silence
    expect(rec).toMatchObject({ signal: 'SIGTERM', message: 'stopped by its wrapper: the agent was gone for longer than the partition grace period' });
  });
});

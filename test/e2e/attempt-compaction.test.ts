// Bounded job records through the real services (issue 14): a job that recovers more times
// than the scheduler keeps attempts for (JOB_ATTEMPTS_KEPT=2) ends with a record holding only
// its newest attempts and the count of the dropped ones, still resumes every attempt from its
// newest committed checkpoint, and `gantry job status` says how many older attempts were
// compacted; the dropped attempts are archived beside the record, so `gantry report` still
// counts every retry; the job's events still hold every attempt.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointClient } from '@gantry/sdk';
import { CheckpointFormat, CheckpointState, FailureClass, Job, JobState, jobStateName } from '@gantry/proto';
import { keys } from '@gantry/store';
import { eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { gantry } from '../harness/tools.js';
import { FAST_RECOVERY } from '../harness/fast-config.js';

const setup = stackPerTest();

describe('attempt history compaction', () => {
  it('a job that recovers more often than the record keeps attempts stays bounded, resumes from its checkpoint, and says what was compacted', async () => {
    const { stack, client } = await setup({ agents: 2, env: { scheduler: { JOB_ATTEMPTS_KEPT: '2' }, 'node-agent': { CHECKPOINT_POLL_MS: '250' } } });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const dir = join(stack.workDir, 'ckpt');
    const resumed = join(stack.workDir, 'resumed.txt');
    const go = join(stack.workDir, 'go');
    writeFileSync(resumed, '');
    // Attempt 1 writes a checkpoint (marker format) and fails once it is committed; attempts 2-4
    // record where they resume and fail; attempt 5 records it and succeeds.
    const script = [
      'if [ "$GANTRY_ATTEMPT" = 1 ]; then',
      '  mkdir -p "$GANTRY_CHECKPOINT_DIR/step-10" && echo weights > "$GANTRY_CHECKPOINT_DIR/step-10/model.bin" && touch "$GANTRY_CHECKPOINT_DIR/step-10/GANTRY_COMPLETE"',
      `  while [ ! -f ${go} ]; do sleep 0.2; done; exit 1`,
      'fi',
      `echo "$GANTRY_ATTEMPT $GANTRY_RESUME_FROM" >> ${resumed}`,
      '[ "$GANTRY_ATTEMPT" -ge 5 ]',
    ].join('\n');
    const { job } = await client.submitJob({
      nodes: 1, gpusPerNode: 2, stopGraceSeconds: 1, command: ['sh', '-c', script],
      retry: { maxRecoveries: 4, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION] },
      checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_MARKER, storageTarget: '', retention: undefined },
    });
    const id = job!.id;
    const step10 = join(dir, 'step-10');
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      await eventually('step-10 committed', async () => (await ck.listCheckpoints(id)).find((c) => c.step === 10 && c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED), 30_000);
    } finally {
      ck.close();
    }
    appendFileSync(go, '');

    const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 90_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempt).toBe(5);
    expect(done.recoveries).toBe(4);
    // The record keeps the newest two attempts; attempts[0] is attempt attemptsCompacted + 1.
    expect(done.attemptsCompacted).toBe(3);
    expect(done.attempts.map((a) => a.number)).toEqual([4, 5]);
    expect(done.attempts[0]!.failure?.failureClass).toBe(FailureClass.FAILURE_CLASS_APPLICATION);
    expect(done.attempts.map((a) => a.resumedFromCheckpoint)).toEqual([step10, step10]);
    const stored = Job.fromJSON(JSON.parse((await stack.redis.hget(keys.job(id), 'job'))!));
    expect(stored.attempts).toHaveLength(2);
    // Every later attempt resumed from the checkpoint attempt 1 committed.
    expect(readFileSync(resumed, 'utf8').trim().split('\n')).toEqual([2, 3, 4, 5].map((n) => `${n} ${step10}`));

    const status = await gantry(stack, 'job', 'status', id);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`Attempt:    5 (3 older attempts (1-3) compacted from the record; \`gantry job watch ${id}\` replays their events)`);
    expect(status.stdout).toContain('Attempt 4:');
    expect(status.stdout).not.toContain('Attempt 3:');
    const attempts = await gantry(stack, 'job', 'attempts', id);
    expect(attempts.stdout.split('\n').filter((l) => /^\d+ {2,}/.test(l)).map((l) => l.split(' ')[0])).toEqual(['4', '5']);
    expect(attempts.stdout).toContain('\n3 older attempts (1-3) compacted from the record;');

    // The dropped attempts are in the job's archive, and `gantry report` counts all five.
    const archived = (await stack.redis.lrange(keys.jobAttemptsArchive(id), 0, -1)).map((j) => (JSON.parse(j) as { number: number }).number);
    expect(archived).toEqual([1, 2, 3]);
    const report = await gantry(stack, 'report', '--since', '1h', '-o', 'json');
    expect(report.code).toBe(0);
    const r = JSON.parse(report.stdout) as { retryChains?: { chains: number; attempts: number; retries: number } };
    expect(r.retryChains).toMatchObject({ chains: 1, attempts: 5, retries: 4 });

    // The events published along the way still hold every attempt.
    const seen = new Set<number>();
    for await (const e of client.watchJob(id)) for (const a of e.job?.attempts ?? []) seen.add(a.number);
    expect([...seen].sort()).toEqual([1, 2, 3, 4, 5]);
  });
});

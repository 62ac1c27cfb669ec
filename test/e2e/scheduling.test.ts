// Scheduling policy through the real services: priority preemption with a grace period (the
// requeued attempt resumes from the newest committed checkpoint; victims chosen by their last
// commit, asked of the checkpoint service, and still chosen while it does not answer), quota
// borrowing and reclaim, EASY backfill around a reservation, time limits, explain.
import { describe, expect, it } from 'vitest';
import { CheckpointClient, GantryClient } from '@gantry/sdk';
import { CheckpointFormat, CheckpointState, JobState, type Job } from '@gantry/proto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliCommand } from '../../deploy/local/services.js';
import { eventually, type TestStack } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const start = stackPerTest();
let stack: TestStack | undefined;

async function setup(): Promise<GantryClient> {
  const s = await start({ agents: 2 });
  stack = s.stack;
  return s.client;
}

function state(c: GantryClient, id: string, want: JobState[], timeoutMs = 30_000): Promise<Job> {
  return waitForJob(c, id, want, timeoutMs);
}

const S = JobState;
// Ranks that take their SIGTERM gracefully: say so, then exit after a moment.
const GRACEFUL = ['sh', '-c', 'trap \'echo "got SIGTERM, saving"; sleep 1; exit 143\' TERM; while :; do sleep 0.2; done'];

describe('scheduling policy', () => {
  it('preempts a lower-priority gang with a grace period and requeues it as a new attempt', async () => {
    const c = await setup();
    const { job: low } = await c.submitJob({ name: 'low', nodes: 2, gpusPerNode: 8, priorityClass: 'low', stopGraceSeconds: 5, command: GRACEFUL });
    await state(c, low!.id, [S.JOB_STATE_RUNNING]);
    const { job: high } = await c.submitJob({ name: 'high', nodes: 2, gpusPerNode: 8, priorityClass: 'high', command: ['sh', '-c', 'sleep 2'] });
    const preempted = await state(c, low!.id, [S.JOB_STATE_PREEMPTED, S.JOB_STATE_PENDING, S.JOB_STATE_SCHEDULED]);
    expect(preempted.reason).toContain(`preempted for ${high!.id}`);
    expect(preempted.preemptedAt).toBeDefined();
    await state(c, high!.id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED]);
    // The victim got SIGTERM and used its grace period (it printed and exited 143, not SIGKILL).
    const lines: string[] = [];
    for await (const l of c.streamLogs(low!.id, { attempt: 1 })) lines.push(l.line?.text ?? '');
    expect(lines.filter((l) => l === 'got SIGTERM, saving')).toHaveLength(2);
    const first = (await c.getJob(low!.id)).attempts[0]!;
    expect(first.ranks.map((r) => r.signal)).toEqual(['SIGTERM', 'SIGTERM']);
    // After the high-priority job, the low one runs again as attempt 2.
    await state(c, high!.id, [S.JOB_STATE_SUCCEEDED]);
    const again = await state(c, low!.id, [S.JOB_STATE_RUNNING]);
    expect(again.attempt).toBe(2);
    await c.cancelJob(low!.id);
  });

  it('preempts the job that loses the least work: the one with the newest committed checkpoint', async () => {
    const c = await setup();
    // b starts first, so by run time alone it would have more to lose than a ...
    const { job: b } = await c.submitJob({ name: 'checkpointed', nodes: 1, gpusPerNode: 8, priorityClass: 'low', stopGraceSeconds: 1, command: GRACEFUL });
    await state(c, b!.id, [S.JOB_STATE_RUNNING]);
    await new Promise((r) => setTimeout(r, 1_500));
    const { job: a } = await c.submitJob({ name: 'no-checkpoint', nodes: 1, gpusPerNode: 8, priorityClass: 'low', stopGraceSeconds: 1, command: GRACEFUL });
    await state(c, a!.id, [S.JOB_STATE_RUNNING]);
    await new Promise((r) => setTimeout(r, 1_000));
    // ... but it commits a checkpoint through the checkpoint service: now it loses the least.
    const ck = new CheckpointClient({ address: stack!.checkpointAddr, tls: stack!.internalClientTls });
    try {
      const begun = await ck.beginCheckpoint({ jobId: b!.id, attempt: 1, step: 100, path: '/ckpt/b/100', shardCount: 1 });
      await ck.reportShard(begun.id, 0, 1024);
      await ck.commitCheckpoint(begun.id);
    } finally {
      ck.close();
    }
    const { job: high } = await c.submitJob({ name: 'high', nodes: 1, gpusPerNode: 8, priorityClass: 'high', command: ['true'] });
    await state(c, high!.id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED]);
    expect((await c.getJob(b!.id)).preemptedAt).toBeDefined();
    expect((await c.getJob(a!.id)).preemptedAt).toBeUndefined();
    await c.cancelJob(a!.id);
  });

  it('requeues a preempted job with GANTRY_RESUME_FROM = its newest COMMITTED checkpoint', async () => {
    const s = await start({ agents: 1, env: { 'node-agent': { CHECKPOINT_POLL_MS: '250' } } });
    stack = s.stack;
    const c = s.client;
    const dir = join(stack.workDir, 'ckpt');
    const resumed = join(stack.workDir, 'resumed.txt');
    // Attempt 1 completes step-5 and step-10 (marker layout), starts step-15 without finishing
    // it, and trains until preempted. Attempt 2 records where it resumes from.
    const script = [
      'if [ "$GANTRY_ATTEMPT" = 1 ]; then',
      '  for s in 5 10; do d="$GANTRY_CHECKPOINT_DIR/step-$s"; mkdir -p "$d"; echo w > "$d/weights"; touch "$d/GANTRY_COMPLETE"; sleep 0.5; done',
      '  mkdir -p "$GANTRY_CHECKPOINT_DIR/step-15"; echo partial > "$GANTRY_CHECKPOINT_DIR/step-15/weights"',
      '  trap \'exit 143\' TERM; while :; do sleep 0.2; done',
      'fi',
      `echo "$GANTRY_ATTEMPT $GANTRY_RESUME_FROM" > ${resumed}`,
    ].join('\n');
    const { job: low } = await c.submitJob({
      name: 'low', nodes: 1, gpusPerNode: 8, priorityClass: 'low', stopGraceSeconds: 5, command: ['sh', '-c', script],
      checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_MARKER, storageTarget: '', retention: undefined },
    });
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      await eventually('step-10 committed', async () => (await ck.listCheckpoints(low!.id)).find((k) => k.step === 10 && k.state === CheckpointState.CHECKPOINT_STATE_COMMITTED), 30_000);
      // step-15 is newer but not complete: seen, never committed.
      await eventually('step-15 seen', async () => (await ck.listCheckpoints(low!.id)).find((k) => k.step === 15), 10_000);
    } finally {
      ck.close();
    }
    const { job: high } = await c.submitJob({ name: 'high', nodes: 1, gpusPerNode: 8, priorityClass: 'high', command: ['sh', '-c', 'sleep 1'] });
    const preempted = await state(c, low!.id, [S.JOB_STATE_PREEMPTED, S.JOB_STATE_PENDING, S.JOB_STATE_SCHEDULED]);
    expect(preempted.reason).toContain(`preempted for ${high!.id}`);
    await state(c, high!.id, [S.JOB_STATE_SUCCEEDED]);
    const done = await state(c, low!.id, [S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED]);
    expect(done.state).toBe(S.JOB_STATE_SUCCEEDED);
    expect(done.attempt).toBe(2);
    expect(done.attempts[0]!.resumedFromCheckpoint).toBe('');
    expect(done.attempts[1]!.resumedFromCheckpoint).toBe(join(dir, 'step-10'));
    expect(readFileSync(resumed, 'utf8').trim()).toBe(`2 ${join(dir, 'step-10')}`);
  });

  it('still preempts while the checkpoint service does not answer: by start time, without waiting on it', async () => {
    const c = await setup();
    const submitLow = (name: string) => c.submitJob({ name, nodes: 1, gpusPerNode: 8, priorityClass: 'low', stopGraceSeconds: 1, command: GRACEFUL });
    // older starts first and commits a checkpoint: with the service's facts it would lose the
    // least; by run time alone, newer does.
    const { job: older } = await submitLow('older');
    await state(c, older!.id, [S.JOB_STATE_RUNNING]);
    await new Promise((r) => setTimeout(r, 1_500));
    const { job: newer } = await submitLow('newer');
    await state(c, newer!.id, [S.JOB_STATE_RUNNING]);
    const ck = new CheckpointClient({ address: stack!.checkpointAddr, tls: stack!.internalClientTls });
    try {
      const begun = await ck.beginCheckpoint({ jobId: older!.id, attempt: 1, step: 100, path: '/ckpt/older/100', shardCount: 1 });
      await ck.reportShard(begun.id, 0, 1024);
      await ck.commitCheckpoint(begun.id);
    } finally {
      ck.close();
    }
    // Stopped (SIGSTOP): it accepts connections and answers nothing.
    stack!.checkpoint.pause();
    try {
      const { job: high } = await c.submitJob({ name: 'high', nodes: 1, gpusPerNode: 8, priorityClass: 'high', command: ['true'] });
      await state(c, high!.id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED], 20_000);
      expect((await c.getJob(newer!.id)).preemptedAt).toBeDefined();
      expect((await c.getJob(older!.id)).preemptedAt).toBeUndefined();
      await eventually('the scheduler warned', () => stack!.logsOf('scheduler-0').includes('cannot learn last checkpoint commits') || undefined, 10_000);
    } finally {
      stack!.checkpoint.resume();
    }
    // Its next attempt needs to know where to resume from, so it is placed once the service answers.
    const again = await state(c, newer!.id, [S.JOB_STATE_RUNNING], 40_000);
    expect(again.attempt).toBe(2);
    await Promise.all([c.cancelJob(older!.id), c.cancelJob(newer!.id)]);
  });

  it('lets a tenant borrow idle quota from its cohort and reclaims it when the owner needs it', async () => {
    const c = await setup();
    await c.setSchedulingConfig({ tenants: { ml: { weight: 1, nominalGpus: 8, cohort: 'research' }, vision: { weight: 1, nominalGpus: 8, cohort: 'research' } } });
    const borrow1 = await c.submitJob({ tenant: 'ml', nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: GRACEFUL });
    const borrow2 = await c.submitJob({ tenant: 'ml', nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: GRACEFUL });
    // ml runs 16 GPUs: 8 of its own and 8 borrowed from vision, which is idle.
    await state(c, borrow1.job!.id, [S.JOB_STATE_RUNNING]);
    await state(c, borrow2.job!.id, [S.JOB_STATE_RUNNING]);
    const { job: owner } = await c.submitJob({ tenant: 'vision', nodes: 1, gpusPerNode: 8, command: ['sh', '-c', 'sleep 1'] });
    await state(c, owner!.id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED], 30_000);
    const after = await Promise.all([c.getJob(borrow1.job!.id), c.getJob(borrow2.job!.id)]);
    const victims = after.filter((j) => j.preemptedAt !== undefined);
    expect(victims).toHaveLength(1);
    expect(victims[0]!.attempts[0]!.failure?.reason).toMatch(/reclaim/i);
    // ml keeps its nominal 8 GPUs.
    expect(after.filter((j) => j.state === S.JOB_STATE_RUNNING)).toHaveLength(1);
  });

  it('orders equal-priority work by fair share: a tenant that used less goes first', async () => {
    const c = await setup();
    await c.setSchedulingConfig({ tenants: { heavy: { weight: 1 }, light: { weight: 1 } } });
    const { job: first } = await c.submitJob({ tenant: 'heavy', nodes: 2, gpusPerNode: 8, command: ['sleep', '4'] });
    await state(c, first!.id, [S.JOB_STATE_RUNNING]);
    await new Promise((r) => setTimeout(r, 1_500));
    // Submitted first, but its tenant has been using the whole cluster ...
    const { job: heavy } = await c.submitJob({ tenant: 'heavy', nodes: 2, gpusPerNode: 8, command: ['sleep', '1'] });
    const { job: light } = await c.submitJob({ tenant: 'light', nodes: 2, gpusPerNode: 8, command: ['sleep', '1'] });
    // (Queue positions in explanations refresh every few seconds.)
    const heavyWhy = await eventually('heavy explained behind light', async () => { const e = await c.explainJob(heavy!.id); return e.queuePosition === 2 ? e : undefined; }, 10_000);
    expect(heavyWhy.pendingReason).toBe('no-capacity');
    // ... so the light tenant's job runs before it.
    const l = await state(c, light!.id, [S.JOB_STATE_SUCCEEDED], 30_000);
    const h = await state(c, heavy!.id, [S.JOB_STATE_SUCCEEDED], 30_000);
    expect(l.attempts[0]!.scheduledAt!.getTime()).toBeLessThan(h.attempts[0]!.scheduledAt!.getTime());
  });

  it('backfills a short job around the head job reservation but holds a long one, and explains why', async () => {
    const c = await setup();
    const { job: a } = await c.submitJob({ name: 'a', nodes: 1, gpusPerNode: 8, timeLimitSeconds: 15, command: ['sleep', '10'] });
    await state(c, a!.id, [S.JOB_STATE_RUNNING]);
    const { job: head } = await c.submitJob({ name: 'head', nodes: 2, gpusPerNode: 8, timeLimitSeconds: 60, command: ['sleep', '1'] });
    const { job: long } = await c.submitJob({ name: 'long', nodes: 1, gpusPerNode: 8, timeLimitSeconds: 600, command: ['sleep', '1'] });
    const { job: short } = await c.submitJob({ name: 'short', nodes: 1, gpusPerNode: 8, timeLimitSeconds: 3, command: ['sleep', '1'] });
    // The short job fits on the free node and ends before the reservation: it starts now.
    await state(c, short!.id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED]);
    const headWhy = await eventually('head explained', async () => { const e = await c.explainJob(head!.id); return e.reservationNodes.length > 0 ? e : undefined; });
    expect(headWhy.queuePosition).toBe(1);
    expect(headWhy.reservationNodes.sort()).toEqual(['node-0', 'node-1']);
    // Once the short job is done a node is free, yet the long job may not take it: it would
    // delay the head job's reservation.
    await state(c, short!.id, [S.JOB_STATE_SUCCEEDED]);
    const longWhy = await eventually('long held by the reservation', async () => { const e = await c.explainJob(long!.id); return e.pendingReason === 'reservation' ? e : undefined; }, 10_000);
    expect(longWhy.message).not.toBe('');
    expect((await c.getJob(long!.id)).state).toBe(S.JOB_STATE_PENDING);
    // Then the head job runs before the long one.
    const headRan = await state(c, head!.id, [S.JOB_STATE_SUCCEEDED], 40_000);
    const longRan = await state(c, long!.id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED], 40_000);
    expect(headRan.attempts[0]!.scheduledAt!.getTime()).toBeLessThan(longRan.attempts[0]!.scheduledAt!.getTime());
  });

  it('a queue deeper than a quick pass: the tail is still explained and placed, in queue order', async () => {
    // A quick pass decides the head of the queue (SCHEDULER_QUEUE_DEPTH, 256 by default); 16
    // here, so that a queue past it drains in seconds rather than a minute.
    const depth = 16;
    const total = 2 * depth + 8;
    const s = await start({ agents: 2, env: { scheduler: { SCHEDULER_QUEUE_DEPTH: String(depth) } } }); // 2 agents x 8 GPUs
    stack = s.stack;
    const c = s.client;
    // `total` queued whole-node jobs behind two that hold both nodes: more than a quick pass
    // decides, so the tail is reached only by the full passes.
    const holders = await Promise.all([0, 1].map((i) => c.submitJob({ name: `hold-${i}`, nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: GRACEFUL })));
    for (const h of holders) await state(c, h.job!.id, [S.JOB_STATE_RUNNING]);
    const queued: string[] = [];
    for (let i = 0; i < total - 1; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, total - 1 - i) }, (_, k) => c.submitJob({ name: `q-${i + k}`, nodes: 1, gpusPerNode: 8, command: ['true'] })));
      queued.push(...batch.map((b) => b.job!.id));
    }
    // Submitted alone, after the others: the last in queue order (jobs of one concurrent batch
    // may be ordered any way among themselves).
    const last = (await c.submitJob({ name: `q-${total - 1}`, nodes: 1, gpusPerNode: 8, command: ['true'] })).job!.id;
    queued.push(last);
    const why = await eventually('the last job explained', async () => { const e = await c.explainJob(last); return e.queuePosition === total ? e : undefined; }, 15_000);
    expect(why.message).not.toBe('');
    // The holders end: the queue drains in order, the tail included.
    for (const h of holders) await c.cancelJob(h.job!.id);
    await state(c, last, [S.JOB_STATE_SUCCEEDED], 120_000);
    const firstStarts = await Promise.all(queued.slice(0, 4).map(async (id) => (await c.getJob(id)).attempts[0]!.startedAt!.getTime()));
    const lastStart = (await c.getJob(last)).attempts[0]!.startedAt!.getTime();
    expect(Math.max(...firstStarts)).toBeLessThanOrEqual(lastStart);
  }, 240_000);

  it('explains a job that cannot fit, node by node, and kills a job over its time limit', async () => {
    const c = await setup();
    const { job: big } = await c.submitJob({ nodes: 3, gpusPerNode: 8, command: ['true'] });
    const why = await eventually('explained', async () => { const e = await c.explainJob(big!.id); return e.message && e.queuePosition ? e : undefined; });
    expect(why.pendingReason).toBe('no-capacity');
    // GetJob carries the one-line form.
    expect((await c.getJob(big!.id)).explanation).toMatch(/^position \d+ in the queue; /);
    const { job: typed } = await c.submitJob({ nodes: 1, gpusPerNode: 8, gpuTypes: ['NVIDIA B200'], command: ['true'] });
    const typedWhy = await eventually('explained', async () => { const e = await c.explainJob(typed!.id); return e.rejections.length ? e : undefined; });
    expect(typedWhy.rejections).toEqual([{ reason: 'gpu type NVIDIA H100 80GB HBM3 not in [NVIDIA B200]', nodes: 2 }]);
    // The same through the CLI, as an operator reads it.
    const cli = cliCommand();
    const out = await new Promise<string>((resolve, reject) => execFile(cli.command, [...cli.args, '--addr', stack!.gatewayAddr, 'job', 'explain', typed!.id], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
    expect(out).toContain(`job ${typed!.id} PENDING, position`);
    expect(out).toContain('2 nodes: gpu type NVIDIA H100 80GB HBM3 not in [NVIDIA B200]');
    await c.cancelJob(big!.id);
    const { job: slow } = await c.submitJob({ nodes: 1, gpusPerNode: 1, timeLimitSeconds: 2, stopGraceSeconds: 1, command: ['sleep', '60'] });
    const ended = await state(c, slow!.id, [S.JOB_STATE_FAILED], 20_000);
    expect(ended.reason).toBe('exceeded its time limit of 2s');
  });
});

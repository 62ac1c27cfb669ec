// Checkpoints through the real services (issue 11): the agent on node rank 0's host finds the
// checkpoints a job writes into JobSpec.checkpoint.dir, checks them with the real layout rules
// (libs/checkpoint-layouts fixtures copied in, step by step), and the checkpoint service
// commits them without any client call; a corrupted DCP checkpoint (one storage file removed)
// is never offered for resume; python/gantry_ckpt.py reports explicitly through the agent.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointClient } from '@gantry/sdk';
import { CheckpointFormat, CheckpointState, FailureClass, JobState, jobStateName } from '@gantry/proto';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { gantry } from '../harness/tools.js';
import { FAST_RECOVERY } from '../harness/fast-config.js';

const setup = stackPerTest();
const FIXTURE = join(REPO_ROOT, 'libs/checkpoint-layouts/test/fixtures/layouts/pytorch_dcp/ckpt');
const AGENT_ENV = { 'node-agent': { CHECKPOINT_POLL_MS: '250' } };
const { CHECKPOINT_STATE_COMMITTED: COMMITTED, CHECKPOINT_STATE_CORRUPT: CORRUPT } = CheckpointState;

describe('checkpoints', () => {
  it('a DCP checkpoint written by the job is discovered and COMMITTED; one with a storage file removed is CORRUPT, and the recovery resumes from the previous good one', async () => {
    const { stack, client } = await setup({ agents: 2, env: AGENT_ENV });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    const dir = join(stack.workDir, 'ckpt');
    const resumed = join(stack.workDir, 'resumed.txt');
    // Attempt 1 saves step-10 and step-20 the way DCP does (storage files, then .metadata), then
    // a storage file of step-20 is lost and the job fails. Attempt 2 records where it resumes.
    const script = [
      `if [ "$GANTRY_ATTEMPT" = 1 ]; then`,
      `  for s in 10 20; do mkdir -p "$GANTRY_CHECKPOINT_DIR/step-$s"; cp ${FIXTURE}/__* "$GANTRY_CHECKPOINT_DIR/step-$s/"; sleep 1; cp ${FIXTURE}/.metadata "$GANTRY_CHECKPOINT_DIR/step-$s/"; sleep 2; done`,
      `  rm "$GANTRY_CHECKPOINT_DIR/step-20/__1_0.distcp"; sleep 2; exit 3`,
      `fi`,
      `echo "$GANTRY_RESUME_FROM" > ${resumed}`,
    ].join('\n');
    const { job } = await client.submitJob({
      nodes: 2, gpusPerNode: 4, stopGraceSeconds: 1, command: ['sh', '-c', script],
      retry: { maxRecoveries: 1, retryOn: [FailureClass.FAILURE_CLASS_APPLICATION] },
      checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: '', retention: undefined },
    });
    const id = job!.id;
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      // step-10 is committed while the job still runs, with nobody calling the service.
      const first = await eventually('step-10 committed', async () => (await ck.listCheckpoints(id)).find((c) => c.step === 10 && c.state === COMMITTED), 30_000);
      expect(first).toMatchObject({ path: join(dir, 'step-10'), format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, source: 'discovery', attempt: 1 });
      expect(first.files.map((f) => f.path).sort()).toEqual(['.metadata', '__0_0.distcp', '__1_0.distcp', '__1_1.distcp']);
      expect(first.bytes).toBe(first.files.reduce((n, f) => n + f.size, 0));
      const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
      expect(jobStateName(done.state)).toBe('SUCCEEDED');
      expect(done.attempt).toBe(2);
      const all = await ck.listCheckpoints(id);
      const bad = all.find((c) => c.step === 20)!;
      expect(bad.state).toBe(CORRUPT);
      expect(bad.reason).toMatch(/__1_0\.distcp/);
      // never offered for resume: attempt 2 got step-10
      expect(done.attempts[1]!.resumedFromCheckpoint).toBe(join(dir, 'step-10'));
      expect(readFileSync(resumed, 'utf8').trim()).toBe(join(dir, 'step-10'));
      expect((await ck.getLatestCheckpoint(id))?.path).toBe(join(dir, 'step-10'));

      // the CLI shows it
      const list = await gantry(stack, ...stack.internalClientFlags(), 'ckpt', 'list', id, '--checkpoint-addr', stack.checkpointAddr);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/ 10 +COMMITTED +dcp .*step-10/);
      expect(list.stdout).toMatch(/CORRUPT/);
      const show = await gantry(stack, ...stack.internalClientFlags(), 'ckpt', 'show', bad.id, '--checkpoint-addr', stack.checkpointAddr);
      expect(show.code).toBe(0);
      expect(show.stdout).toMatch(/__1_0\.distcp/);
      expect(show.stdout).toMatch(/dcp/);
    } finally {
      ck.close();
    }
  });

  it('python/gantry_ckpt.py: begin and commit through the agent endpoint with the job token; retention deletes old ones inside the directory', async () => {
    const { stack, client } = await setup({ agents: 1, env: AGENT_ENV });
    const dir = join(stack.workDir, 'pyckpt');
    const out = join(stack.workDir, 'py.out');
    const py = [
      'import os, sys, time',
      `sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'python'))})`,
      'import gantry_ckpt as g',
      'assert g.enabled()',
      'results = []',
      'for step in (1, 2, 3):',
      '    p = g.checkpoint_path("save-%d" % step)',
      '    results.append(g.begin(p, step).status)',
      '    os.makedirs(p)',
      '    open(os.path.join(p, "weights.bin"), "wb").write(b"x" * 1000)',
      '    results.append(g.commit(p, step).status)',
      '    results.append(g.commit(p, step, marker=True).status)',
      'try:',
      '    g.begin("/etc/passwd", 9)',
      'except g.GantryError as e:',
      '    results.append(str(e.status))',
      `open(${JSON.stringify(out)}, "w").write(" ".join(results))`,
      'time.sleep(3)',
    ].join('\n');
    const { job } = await client.submitJob({
      nodes: 1, gpusPerNode: 8, command: ['python3', '-c', py],
      checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: '', retention: { keepLast: 1, keepEvery: 0, gcGraceSeconds: 0, delete: true } },
    });
    const id = job!.id;
    const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(readFileSync(out, 'utf8')).toBe('IN_PROGRESS INCOMPLETE COMPLETE IN_PROGRESS INCOMPLETE COMPLETE IN_PROGRESS INCOMPLETE COMPLETE 403');
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      // commit returned once the report was in JetStream; the service records it right after
      const latest = await eventually('save-3 committed', async () => ((await ck.getLatestCheckpoint(id))?.step === 3 ? ck.getLatestCheckpoint(id) : undefined), 20_000);
      expect(latest).toMatchObject({ step: 3, path: join(dir, 'save-3'), format: CheckpointFormat.CHECKPOINT_FORMAT_MARKER, state: COMMITTED });
      // keep_last 1 with deletion on: the older two are removed from disk by the agent, recorded DELETED with events
      await eventually('older ones deleted', async () => (await ck.listCheckpoints(id)).filter((c) => c.state === CheckpointState.CHECKPOINT_STATE_DELETED).length === 2 || undefined, 30_000);
      expect(existsSync(join(dir, 'save-1'))).toBe(false);
      expect(existsSync(join(dir, 'save-2'))).toBe(false);
      expect(existsSync(join(dir, 'save-3'))).toBe(true);
      const events = await ck.listCheckpointEvents(id);
      expect(events.filter((e) => e.kind === 'deleted').map((e) => e.path).sort()).toEqual([join(dir, 'save-1'), join(dir, 'save-2')]);
    } finally {
      ck.close();
    }
  });

  it('an agent killed -9 mid-job: the restarted one resumes the watch without reporting twice, and the rank still reaches the endpoint', async () => {
    // A long heartbeat timeout: the restart must not be taken for a lost node on a busy machine.
    const { stack, client } = await setup({ agents: 1, env: AGENT_ENV, heartbeatTimeoutMs: 30_000 });
    const dir = join(stack.workDir, 'ckpt');
    const go = join(stack.workDir, 'go');
    const out = join(stack.workDir, 'explicit.txt');
    const commit = `import sys; sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'python'))}); import gantry_ckpt as g; print(g.commit(sys.argv[1], 30).status)`;
    const script = [
      `mkdir -p "$GANTRY_CHECKPOINT_DIR/step-10"; cp ${FIXTURE}/__* ${FIXTURE}/.metadata "$GANTRY_CHECKPOINT_DIR/step-10/"`,
      `while [ ! -f ${go} ]; do sleep 0.2; done`,
      `mkdir -p "$GANTRY_CHECKPOINT_DIR/step-20"; cp ${FIXTURE}/__* ${FIXTURE}/.metadata "$GANTRY_CHECKPOINT_DIR/step-20/"`,
      `mkdir -p "$GANTRY_CHECKPOINT_DIR/final-30"; echo w > "$GANTRY_CHECKPOINT_DIR/final-30/w"; touch "$GANTRY_CHECKPOINT_DIR/final-30/GANTRY_COMPLETE"`,
      `python3 -c '${commit}' "$GANTRY_CHECKPOINT_DIR/final-30" > ${out} 2>&1`,
      'sleep 2',
    ].join('\n');
    const { job } = await client.submitJob({
      nodes: 1, gpusPerNode: 8, command: ['sh', '-c', script],
      checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: '', retention: undefined },
    });
    const id = job!.id;
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      await eventually('step-10 committed', async () => (await ck.listCheckpoints(id)).find((c) => c.step === 10 && c.state === COMMITTED), 30_000);
      await stack.agents[0]!.kill();
      await stack.agents[0]!.start();
      // start() returns on the old heartbeat; wait for the new process's endpoint
      await eventually('the restarted agent', () => (stack.logsOf('agent-node-0').match(/checkpoint endpoint listening/g)?.length ?? 0) >= 2 || undefined, 60_000);
      writeFileSync(go, '');
      const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 90_000);
      expect(done.attempt).toBe(1);
      expect(jobStateName(done.state)).toBe('SUCCEEDED');
      expect(readFileSync(out, 'utf8').trim()).toBe('COMPLETE');
      const all = await eventually('three committed', async () => {
        const l = await ck.listCheckpoints(id);
        return l.filter((c) => c.state === COMMITTED).length === 3 ? l : undefined;
      }, 20_000);
      expect(all.map((c) => c.step)).toEqual([10, 20, 30]);
      // final-30: whichever saw it first (the watch or the explicit commit) created the record
      expect(all.slice(0, 2).map((c) => c.source)).toEqual(['discovery', 'discovery']);
      const events = await ck.listCheckpointEvents(id);
      expect(events.filter((e) => e.kind === 'committed' && e.path === join(dir, 'step-10'))).toHaveLength(1);
    } finally {
      ck.close();
    }
  });
});

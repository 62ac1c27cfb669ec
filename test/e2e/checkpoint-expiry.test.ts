// "Nothing in Redis grows forever" for checkpoints (issue 11), through the real services: a job
// cancelled while it runs saves a last checkpoint in its stop grace period (a rank that traps
// SIGTERM), after the job's final transition. Only the agent's last discovery pass finds it,
// so its record is created after the checkpoint service began the job's expiry. It still
// expires with the rest: every checkpoint key of the job gets the record TTL, and the job is
// not put back into the last-commit hash.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointClient } from '@gantry/sdk';
import { CheckpointFormat, CheckpointState, JobState } from '@gantry/proto';
import { keys } from '@gantry/store';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';

const setup = stackPerTest();
const DCP = join(REPO_ROOT, 'libs/checkpoint-layouts/test/fixtures/layouts/pytorch_dcp/ckpt');
const TTL_SECONDS = 120;

describe('checkpoint records of a finished job', () => {
  it('a save written in the stop grace after cancel, found after the job ended, expires with the rest', async () => {
    const { stack, client } = await setup({
      agents: 1,
      env: { 'node-agent': { CHECKPOINT_POLL_MS: '250' }, checkpoint: { CHECKPOINT_RECORD_TTL_SECONDS: String(TTL_SECONDS) } },
    });
    const dir = join(stack.workDir, 'ckpt');
    const save = (step: number) => `mkdir -p "$GANTRY_CHECKPOINT_DIR/step-${step}" && cp ${DCP}/__* "$GANTRY_CHECKPOINT_DIR/step-${step}/" && cp ${DCP}/.metadata "$GANTRY_CHECKPOINT_DIR/step-${step}/"`;
    const { job } = await client.submitJob({
      nodes: 1, gpusPerNode: 1, stopGraceSeconds: 5,
      // step-10 while running; step-20 a second after SIGTERM, then exit.
      command: ['sh', '-c', `trap 'sleep 1; ${save(20)}; exit 0' TERM; ${save(10)}; while true; do sleep 0.2; done`],
      checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: '', retention: undefined },
    });
    const id = job!.id;
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      await eventually('step-10 committed', async () => (await ck.listCheckpoints(id)).find((c) => c.step === 10 && c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED), 30_000);
      expect(await stack.redis.hexists(keys.checkpointLastCommit, id)).toBe(1);
      await client.cancelJob(id, 'checkpoint expiry e2e');
      await waitForJob(client, id, [JobState.JOB_STATE_CANCELLED]);
      const late = await eventually('the save of the stop grace committed', async () => (await ck.listCheckpoints(id)).find((c) => c.step === 20 && c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED), 30_000);
      // Its record was created after the job was marked finished (marker set at expiry - TTL).
      const left = await stack.redis.pttl(keys.jobCheckpointFinished(id));
      expect(left).toBeGreaterThan(0);
      expect(late.createdAt!.getTime()).toBeGreaterThan(Date.now() + left - TTL_SECONDS * 1000);

      // Every checkpoint key of the job: its records, index, events, settings, placement, finished mark.
      const jobKeys = [...new Set([
        ...(await stack.redis.keys(`gantry:job:${id}:checkpoint*`)),
        ...(await stack.redis.keys(`gantry:checkpoint:ck-${id}-*`)),
      ])];
      expect(jobKeys).toEqual(expect.arrayContaining([keys.checkpoint(late.id), keys.jobCheckpoints(id), keys.jobCheckpointPlacement(id), keys.jobCheckpointFinished(id)]));
      for (const k of jobKeys) {
        const ms = await stack.redis.pttl(k);
        expect(ms, k).toBeGreaterThan(0);
        expect(ms, k).toBeLessThanOrEqual(TTL_SECONDS * 1000);
      }
      expect(await stack.redis.hexists(keys.checkpointLastCommit, id)).toBe(0);
      // Offered for resume (a retry) until it expires.
      expect((await ck.getLatestCheckpoint(id))?.path).toBe(join(dir, 'step-20'));
    } finally {
      ck.close();
    }
  });
});

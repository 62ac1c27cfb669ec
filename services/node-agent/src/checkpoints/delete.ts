// Retention's deletions, on the agent that can reach the path: the checkpoint service asks
// (CheckpointDeleteRequest on the node's checkpoint-delete subject); the agent removes the
// directory only if it lies inside the checkpoint directory this agent watched for that job
// (confine.ts), and only when the request is not a dry run. The service records the outcome.
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { CheckpointDeleteReply, type CheckpointDeleteRequest } from '@gantry/proto';
import type { CheckpointStateFile } from './state.js';
import { OutsideError, confined } from './confine.js';

export async function handleDelete(req: CheckpointDeleteRequest, state: CheckpointStateFile, log: Logger): Promise<CheckpointDeleteReply> {
  const known = state.state.dirs[req.jobId];
  if (!known) return CheckpointDeleteReply.create({ ok: false, message: `this agent has not watched a checkpoint directory for job ${req.jobId}` });
  if (known.dir !== req.dir) return CheckpointDeleteReply.create({ ok: false, message: `job ${req.jobId}'s checkpoint directory here is ${known.dir}, not ${req.dir}` });
  let real: string;
  try {
    real = await confined(known.dir, req.path);
  } catch (err) {
    const message = err instanceof OutsideError ? `refused: ${err.message}` : `refused: ${(err as Error).message}`;
    log.warn({ job: req.jobId, path: req.path, message }, 'checkpoint deletion refused');
    return CheckpointDeleteReply.create({ ok: false, message });
  }
  if (req.dryRun) return CheckpointDeleteReply.create({ ok: true, deleted: false, message: `dry run: would delete ${real} (${req.reason})` });
  // Removed on purpose: no report for it, from the moment it starts to go until it is forgotten.
  state.deleting.add(req.path);
  try {
    try {
      await rm(real, { recursive: true, force: true });
    } catch (err) {
      return CheckpointDeleteReply.create({ ok: false, message: `could not delete ${real}: ${(err as Error).message}` });
    }
    delete state.state.reported[req.jobId]?.[req.path];
    state.save();
  } finally {
    state.deleting.delete(req.path);
  }
  log.info({ job: req.jobId, checkpoint: req.checkpointId, path: real, reason: req.reason }, 'checkpoint deleted');
  return CheckpointDeleteReply.create({ ok: true, deleted: true, message: `deleted ${real}` });
}

// The environment a distributed launcher expects, per launcher mode (the table in docs/cli.md,
// "The launcher environment", is the contract; keep the two in step).
//
// Per node (the default): Gantry starts one process per node, its "node rank" (typically
// torchrun, which forks one worker per GPU), so NODE_RANK is the node's index, WORLD_SIZE
// counts GPU workers across the gang, CUDA_VISIBLE_DEVICES lists the node's GPUs, and torchrun
// reads the PET_* forms as its defaults. RANK and LOCAL_RANK are torchrun's to set for its
// workers, so they are not set here.
//
// Per GPU: Gantry starts one process per GPU itself, as srun --ntasks-per-node or torchrun's
// workers get them: each has its global RANK, LOCAL_RANK and one GPU in CUDA_VISIBLE_DEVICES.
// No PET_*: a torchrun started in this mode would launch workers per GPU per GPU.
import { CheckpointFormat, CheckpointRetention, Launcher, LocalProcess, type Job, type RankPlacement } from '@gantry/proto';
import { currentAttempt } from '../jobs/lifecycle.js';

/** MASTER_PORT of attempts placed before ports were allocated per attempt. */
export const DEFAULT_MASTER_PORT = 29500;

export function isPerGpu(job: Job): boolean {
  return job.spec?.launcher === Launcher.LAUNCHER_PER_GPU;
}

/** The attempt's rendezvous port: the spec's, else the one claimed at placement. */
export function masterPort(job: Job, attempt: number): number {
  const a = job.attempts.find((x) => x.number === attempt) ?? currentAttempt(job);
  return job.spec?.masterPort || a?.masterPort || DEFAULT_MASTER_PORT;
}

/** The variables every process of the node rank gets (per GPU: before its own, see localProcesses). */
export function rankEnv(job: Job, attempt: number, placement: RankPlacement[], rank: RankPlacement, resumeFrom = ''): Record<string, string> {
  const spec = job.spec!;
  const master = placement.find((p) => p.rank === 0) ?? rank;
  const port = String(masterPort(job, attempt));
  const nnodes = String(placement.length);
  const perNode = String(rank.gpuIndices.length);
  // One object filled in place (the same keys in the same order as spreading the parts into
  // each other): a pass builds one for every rank it places.
  const env: Record<string, string> = { ...spec.env };
  env.MASTER_ADDR = master.address;
  env.MASTER_PORT = port;
  env.WORLD_SIZE = String(placement.reduce((n, p) => n + p.gpuIndices.length, 0));
  env.NODE_RANK = String(rank.rank);
  env.NNODES = nnodes;
  env.LOCAL_WORLD_SIZE = perNode;
  env.GANTRY_JOB_ID = job.id;
  env.GANTRY_JOB_NAME = spec.name;
  env.GANTRY_TENANT = spec.tenant;
  env.GANTRY_ATTEMPT = String(attempt);
  env.GANTRY_NODE_NAME = rank.node;
  env.GANTRY_RESUME_FROM = resumeFrom;
  if (spec.checkpoint?.dir) {
    const checkpoint = checkpointEnv(job);
    for (const k in checkpoint) env[k] = checkpoint[k]!;
  }
  if (isPerGpu(job)) {
    env.GROUP_RANK = String(rank.rank);
    return env;
  }
  env.CUDA_VISIBLE_DEVICES = rank.gpuIndices.join(',');
  env.PET_NNODES = nnodes;
  env.PET_NODE_RANK = String(rank.rank);
  env.PET_MASTER_ADDR = master.address;
  env.PET_MASTER_PORT = port;
  env.PET_NPROC_PER_NODE = perNode;
  return env;
}

/**
 * JobSpec.checkpoint for the ranks (GANTRY_CHECKPOINT_DIR) and for the agent's checkpoint hook,
 * which reads the format and retention from the assignment's environment (issue 11).
 */
export function checkpointEnv(job: Job): Record<string, string> {
  const c = job.spec?.checkpoint;
  if (!c?.dir) return {};
  const format = c.format === CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED ? 'auto' : (CheckpointFormat[c.format] ?? '').replace('CHECKPOINT_FORMAT_', '').toLowerCase();
  return {
    GANTRY_CHECKPOINT_DIR: c.dir,
    GANTRY_CHECKPOINT_FORMAT: format || 'auto',
    ...(c.retention && { GANTRY_CHECKPOINT_RETENTION: JSON.stringify(CheckpointRetention.toJSON(c.retention)) }),
    // The storage target the job named: its ranks' leases are taken there, not on the target
    // whose mount prefix holds the directory.
    ...(c.storageTarget && { GANTRY_STORAGE_TARGET: c.storageTarget }),
    // checkpoint.admit_flushes: the agent's checkpoint hook preloads its flush admission shim
    // into the ranks (or refuses them when it has none).
    ...(c.admitFlushes && { GANTRY_ADMIT_FLUSHES: '1' }),
  };
}

/**
 * Per GPU: one process per GPU of the node rank. Global ranks are numbered node by node in
 * node-rank order (nodes may hold different numbers of GPUs), local ranks in GPU order.
 * Per node: none (the node rank is the one process).
 */
export function localProcesses(job: Job, placement: RankPlacement[], rank: RankPlacement): LocalProcess[] {
  if (!isPerGpu(job)) return [];
  const first = placement.filter((p) => p.rank < rank.rank).reduce((n, p) => n + p.gpuIndices.length, 0);
  return rank.gpuIndices.map((gpu, local) => LocalProcess.create({
    localRank: local,
    env: { RANK: String(first + local), LOCAL_RANK: String(local), CUDA_VISIBLE_DEVICES: String(gpu) },
  }));
}

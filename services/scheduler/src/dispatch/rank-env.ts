// The environment a distributed launcher expects. Gantry starts one process per node (the
// launcher, e.g. torchrun, which forks one worker per GPU), so NODE_RANK is the node's index
// and WORLD_SIZE counts GPU workers across the gang. torchrun also reads the PET_* forms.
import type { Job, RankPlacement } from '@gantry/proto';

export const DEFAULT_MASTER_PORT = 29500;

export function rankEnv(job: Job, attempt: number, placement: RankPlacement[], rank: RankPlacement, resumeFrom = ''): Record<string, string> {
  const spec = job.spec!;
  const master = placement.find((p) => p.rank === 0) ?? rank;
  const port = String(spec.masterPort || DEFAULT_MASTER_PORT);
  const nnodes = String(placement.length);
  const perNode = String(rank.gpuIndices.length);
  return {
    ...spec.env,
    MASTER_ADDR: master.address,
    MASTER_PORT: port,
    WORLD_SIZE: String(placement.reduce((n, p) => n + p.gpuIndices.length, 0)),
    NODE_RANK: String(rank.rank),
    NNODES: nnodes,
    LOCAL_WORLD_SIZE: perNode,
    CUDA_VISIBLE_DEVICES: rank.gpuIndices.join(','),
    GANTRY_JOB_ID: job.id,
    GANTRY_JOB_NAME: spec.name,
    GANTRY_TENANT: spec.tenant,
    GANTRY_ATTEMPT: String(attempt),
    GANTRY_NODE_NAME: rank.node,
    GANTRY_RESUME_FROM: resumeFrom,
    PET_NNODES: nnodes,
    PET_NODE_RANK: String(rank.rank),
    PET_MASTER_ADDR: master.address,
    PET_MASTER_PORT: port,
    PET_NPROC_PER_NODE: perNode,
  };
}

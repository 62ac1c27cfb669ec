// The launcher environment per mode (the contract in docs/cli.md) and the rendezvous port
// choice, as pure functions of the job and its placement.
import { describe, expect, it } from 'vitest';
import { Job, JobSpec, JobState, Launcher, RankAssignment, RankPlacement } from '@gantry/proto';
import { schedule } from '../../src/jobs/lifecycle.js';
import { assignmentFor } from '../../src/dispatch/dispatcher.js';
import { localProcesses, rankEnv } from '../../src/dispatch/rank-env.js';
import { parsePortRange, pickPort } from '../../src/dispatch/ports.js';

// Node rank 0 holds 4 GPUs, node rank 1 holds 2 (whole nodes of different sizes).
const placement = [
  RankPlacement.create({ rank: 0, node: 'a', gpuIndices: [0, 1, 2, 3], address: '10.0.0.1' }),
  RankPlacement.create({ rank: 1, node: 'b', gpuIndices: [4, 5], address: '10.0.0.2' }),
];

function placed(spec: Partial<JobSpec>, port = 29517): Job {
  const pending = Job.create({ id: 'j-1', state: JobState.JOB_STATE_PENDING, spec: JobSpec.create({ name: 'n', tenant: 't', nodes: 2, command: ['python', 'train.py'], env: { A: '1' }, ...spec }) });
  const job = schedule(pending, placement, new Date());
  job.attempts[0]!.masterPort = port;
  return job;
}

describe('per-node launcher (default)', () => {
  it('gives the node rank torchrun\'s variables, the attempt\'s port, and no RANK or LOCAL_RANK', () => {
    const job = placed({});
    const env = rankEnv(job, 1, placement, placement[1]!);
    expect(env).toMatchObject({
      A: '1', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29517', WORLD_SIZE: '6', NODE_RANK: '1', NNODES: '2', LOCAL_WORLD_SIZE: '2',
      CUDA_VISIBLE_DEVICES: '4,5', PET_NNODES: '2', PET_NODE_RANK: '1', PET_MASTER_ADDR: '10.0.0.1', PET_MASTER_PORT: '29517', PET_NPROC_PER_NODE: '2',
      GANTRY_JOB_ID: 'j-1', GANTRY_ATTEMPT: '1', GANTRY_NODE_NAME: 'b',
    });
    expect(env).not.toHaveProperty('RANK');
    expect(env).not.toHaveProperty('LOCAL_RANK');
    expect(assignmentFor(job, placement, placement[1]!, 10).processes).toEqual([]);
  });

  it('lets the launcher variables override the spec\'s env in place, and encodes the assignment as RankAssignment.create would', () => {
    const job = placed({ env: { A: '1', CUDA_VISIBLE_DEVICES: '9', MASTER_PORT: 'x' }, checkpoint: { dir: '/ckpt', format: 0, storageTarget: 's1', admitFlushes: true, retention: undefined } as JobSpec['checkpoint'] });
    const env = rankEnv(job, 1, placement, placement[1]!);
    expect(Object.keys(env)).toEqual([
      'A', 'CUDA_VISIBLE_DEVICES', 'MASTER_PORT', 'MASTER_ADDR', 'WORLD_SIZE', 'NODE_RANK', 'NNODES', 'LOCAL_WORLD_SIZE', 'GANTRY_JOB_ID', 'GANTRY_JOB_NAME',
      'GANTRY_TENANT', 'GANTRY_ATTEMPT', 'GANTRY_NODE_NAME', 'GANTRY_RESUME_FROM', 'GANTRY_CHECKPOINT_DIR', 'GANTRY_CHECKPOINT_FORMAT', 'GANTRY_STORAGE_TARGET',
      'GANTRY_ADMIT_FLUSHES', 'PET_NNODES', 'PET_NODE_RANK', 'PET_MASTER_ADDR', 'PET_MASTER_PORT', 'PET_NPROC_PER_NODE',
    ]);
    expect([env.CUDA_VISIBLE_DEVICES, env.MASTER_PORT, env.GANTRY_CHECKPOINT_FORMAT]).toEqual(['4,5', '29517', 'auto']);
    const a = assignmentFor(job, placement, placement[1]!, 10);
    expect(Buffer.from(RankAssignment.encode(a).finish())).toEqual(Buffer.from(RankAssignment.encode(RankAssignment.create(a)).finish()));
    expect(a).toEqual(RankAssignment.create({ jobId: 'j-1', attempt: 1, rank: 1, command: ['python', 'train.py'], env, gpuIndices: [4, 5], stopGraceSeconds: 10 }));
  });

  it('uses the spec\'s port when it names one', () => {
    expect(rankEnv(placed({ masterPort: 31000 }), 1, placement, placement[0]!).MASTER_PORT).toBe('31000');
  });
});

describe('per-GPU launcher', () => {
  it('starts one process per GPU with its global RANK, LOCAL_RANK and one GPU, numbered node by node', () => {
    const job = placed({ launcher: Launcher.LAUNCHER_PER_GPU });
    const base = rankEnv(job, 1, placement, placement[1]!);
    expect(base).toMatchObject({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29517', WORLD_SIZE: '6', NODE_RANK: '1', GROUP_RANK: '1', NNODES: '2', LOCAL_WORLD_SIZE: '2' });
    for (const k of ['CUDA_VISIBLE_DEVICES', 'PET_NNODES', 'PET_NPROC_PER_NODE', 'RANK']) expect(base).not.toHaveProperty(k);
    expect(localProcesses(job, placement, placement[0]!).map((p) => p.env)).toEqual([0, 1, 2, 3].map((i) => ({ RANK: String(i), LOCAL_RANK: String(i), CUDA_VISIBLE_DEVICES: String(i) })));
    const a = assignmentFor(job, placement, placement[1]!, 10);
    expect(a.processes.map((p) => [p.localRank, p.env])).toEqual([
      [0, { RANK: '4', LOCAL_RANK: '0', CUDA_VISIBLE_DEVICES: '4' }],
      [1, { RANK: '5', LOCAL_RANK: '1', CUDA_VISIBLE_DEVICES: '5' }],
    ]);
  });
});

describe('rendezvous ports', () => {
  it('takes the lowest port of the range that no attempt holds on the host', () => {
    const range = parsePortRange('29500-29502');
    expect(pickPort(range, new Set())).toBe(29500);
    expect(pickPort(range, new Set([29500, 29502]))).toBe(29501);
    expect(pickPort(range, new Set([29500, 29501, 29502]))).toBeUndefined();
  });

  it('reads RENDEZVOUS_PORT_RANGE strictly', () => {
    expect(parsePortRange(' 40000 - 40100 ')).toEqual({ first: 40000, last: 40100 });
    for (const bad of ['29500', '80-90', '30000-29000', '29500-70000', 'a-b']) expect(() => parsePortRange(bad)).toThrow(/FIRST-LAST/);
  });
});

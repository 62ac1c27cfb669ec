// Proto messages shared by the formatting and CLI tests.
import { Job, JobState, Node, NodeState, RankPhase, TopologyRequirement } from '@gantry/proto';

export const NOW = new Date('2026-01-01T12:00:00Z');
export const ago = (s: number) => new Date(NOW.getTime() - s * 1_000);

export const sampleJob = Job.fromPartial({
  id: 'j-42',
  spec: {
    name: 'llama',
    tenant: 'ml',
    nodes: 2,
    gpusPerNode: 8,
    gpuTypes: ['H100'],
    command: ['torchrun', 'train.py'],
    priorityClass: 'high',
    topology: TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH,
    timeLimitSeconds: 3600,
  },
  state: JobState.JOB_STATE_FAILED,
  reason: 'rank 1 exited with code 3',
  attempt: 1,
  createdAt: ago(300),
  attempts: [
    {
      number: 1,
      scheduledAt: ago(290),
      startedAt: ago(280),
      finishedAt: ago(10),
      placement: [
        { rank: 0, node: 'gpu-01', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7], address: '10.0.0.1' },
        { rank: 1, node: 'gpu-02', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7], address: '10.0.0.2' },
      ],
      ranks: [
        { rank: 0, phase: RankPhase.RANK_PHASE_EXITED, pid: 100, signal: 'SIGTERM' },
        { rank: 1, phase: RankPhase.RANK_PHASE_EXITED, pid: 200, exitCode: 3 },
      ],
      failure: { reason: 'process exited', rank: 1, exitCode: 3, node: 'gpu-02' },
      resumedFromCheckpoint: 'ckpt-7',
    },
  ],
});

export const sampleNode = Node.fromPartial({
  name: 'gpu-01',
  state: NodeState.NODE_STATE_READY,
  address: '10.0.0.1',
  gpus: [0, 1, 2, 3].map((index) => ({ index, model: 'H100', memoryMib: 81_559, uuid: `GPU-${index}`, pciBusId: `0000:1${index}:00.0` })),
  allocations: [{ gpuIndex: 1, jobId: 'j-42', attempt: 1, rank: 0 }],
  topology: { nvlinkDomain: 'nvl-1', leafSwitch: 'leaf-2', spine: 'spine-1', rack: 'r3' },
  labels: { zone: 'a' },
  lastHeartbeat: ago(3),
});

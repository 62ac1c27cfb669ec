// What a registration with a changed GPU list means: which GPUs went (a node fault for the jobs
// holding them) and the node event that records it.
import { describe, expect, it } from 'vitest';
import { Attempt, GpuDevice, Job, JobState, Node, NodeState, RankPhase, RankPlacement, RankStatus } from '@gantry/proto';
import { hasUnstartedRankOn, inventoryChange, inventoryChangeReason, missingGpuDetail } from '../../src/agents/node-registry.js';
import { waitForBatch } from '../../src/agents/heartbeat-recorder.js';
import { nodeView } from '../../src/snapshot.js';

const gpu = (index: number, uuid = `GPU-${index}`) => GpuDevice.create({ index, uuid, model: 'NVIDIA H100 80GB HBM3', memoryMib: 81559, pciBusId: `00000000:${(0x18 + index).toString(16)}:00.0` });
const eight = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => gpu(i));

describe('a registration whose GPU list changed', () => {
  it('names the GPUs gone by index and UUID; a GPU swapped in place is gone and back', () => {
    const without3 = eight.filter((g) => g.index !== 3);
    expect(inventoryChange(eight, without3)).toEqual({ gone: [gpu(3)], added: [] });
    expect(inventoryChange(eight, eight)).toEqual({ gone: [], added: [] });
    const swapped = eight.map((g) => (g.index === 5 ? gpu(5, 'GPU-new') : g));
    expect(inventoryChange(eight, swapped)).toEqual({ gone: [gpu(5)], added: [gpu(5, 'GPU-new')] });
  });

  it('describes it as evidence and as the node event reason', () => {
    expect(missingGpuDetail('node-3', gpu(3, 'GPU-8f2c'))).toBe("GPU 3 (GPU-8f2c) is gone from node-3's inventory");
    expect(missingGpuDetail('node-3', GpuDevice.create({ index: 2, pciBusId: '00000000:3a:00.0' }))).toBe("GPU 2 (00000000:3a:00.0) is gone from node-3's inventory");
    expect(inventoryChangeReason('node-3', { gone: [gpu(3)], added: [gpu(6, 'GPU-x')] }))
      .toBe("GPU 3 (GPU-3) is gone from node-3's inventory; GPU 6 (GPU-x) is back in node-3's inventory");
    expect(inventoryChangeReason('node-3', { gone: [], added: [] })).toBeUndefined();
  });

  it('leaves the missing index out of what placement may use', () => {
    const node = Node.create({ name: 'node-3', state: NodeState.NODE_STATE_READY, gpus: eight.filter((g) => g.index !== 3) });
    const view = nodeView({ node, rev: 1, heartbeatMs: 0, instanceId: '', allocations: [] });
    expect(view.freeGpus).toEqual([0, 1, 2, 4, 5, 6, 7]);
    expect(view.gpuCount).toBe(7);
  });
});

describe('which assignments a heartbeat sends again', () => {
  // Two ranks of attempt 2 on node-a (one started), one on node-b; all assigned but rank 1.
  const job = Job.create({
    id: 'job-1', state: JobState.JOB_STATE_SCHEDULED, attempt: 2,
    attempts: [Attempt.create({
      number: 2,
      placement: [RankPlacement.create({ rank: 0, node: 'node-a' }), RankPlacement.create({ rank: 1, node: 'node-a' }), RankPlacement.create({ rank: 2, node: 'node-b' })],
      ranks: [0, 1, 2].map((rank) => RankStatus.create({ rank, phase: rank === 1 ? RankPhase.RANK_PHASE_STARTED : RankPhase.RANK_PHASE_ASSIGNED })),
    })],
  });

  it('an assigned rank on the node that its agent does not report running', () => {
    expect(hasUnstartedRankOn(job, 'node-a')).toBe(true);
    expect(hasUnstartedRankOn(job, 'node-b')).toBe(true);
    expect(hasUnstartedRankOn(job, 'node-c')).toBe(false);
  });

  it('none while the agent reports each such rank running (its STARTED event not handled yet)', () => {
    expect(hasUnstartedRankOn(job, 'node-a', new Set(['job-1:2:0']))).toBe(false);
    expect(hasUnstartedRankOn(job, 'node-b', new Set(['job-1:2:2']))).toBe(false);
    // A rank of an older attempt with the same number is not this one.
    expect(hasUnstartedRankOn(job, 'node-a', new Set(['job-1:1:0']))).toBe(true);
  });
});

describe('heartbeats waiting for a batch', () => {
  it('a newer heartbeat of a waiting node takes the older one\'s place, so the longest-waiting nodes go first', () => {
    const waiting = new Map<string, string>();
    waitForBatch(waiting, 'a', 'a1');
    waitForBatch(waiting, 'b', 'b1');
    waitForBatch(waiting, 'a', 'a2');
    waitForBatch(waiting, 'c', 'c1');
    expect([...waiting]).toEqual([['a', 'a2'], ['b', 'b1'], ['c', 'c1']]);
  });
});

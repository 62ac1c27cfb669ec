// What a registration with a changed GPU list means: which GPUs went (a node fault for the jobs
// holding them) and the node event that records it.
import { describe, expect, it } from 'vitest';
import { GpuDevice, Node, NodeState } from '@gantry/proto';
import { inventoryChange, inventoryChangeReason, missingGpuDetail } from '../../src/agents/node-registry.js';
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

import { describe, expect, it } from 'vitest';
import { WholeNodeSizer } from '../src/snapshot.js';
import type { NodeView } from '../src/placement/index.js';

const node = (name: string, gpuCount: number, gpuModel: string, state = 'READY', labels: Record<string, string> = {}): NodeView => ({
  name, state, gpuModel, gpuCount, freeGpus: [...Array(gpuCount).keys()], labels, topology: { nvlinkDomain: name, leafSwitch: 'l', spine: 's', rack: 'r' },
});

describe('all GPUs of the node (gpus_per_node 0)', () => {
  const sizer = new WholeNodeSizer([
    node('a', 8, 'NVIDIA H100 80GB HBM3'), node('b', 16, 'NVIDIA H100 80GB HBM3', 'QUARANTINED'), node('c', 4, 'NVIDIA A100-SXM4-40GB', 'READY', { zone: 'x' }),
  ]);

  it('sizes the job to the biggest READY node matching its GPU types and selector', () => {
    expect(sizer.gpusPerNode({ gpusPerNode: 0, gpuTypes: [], nodeSelector: {} })).toBe(8);
    expect(sizer.gpusPerNode({ gpusPerNode: 0, gpuTypes: ['NVIDIA A100-SXM4-40GB'], nodeSelector: {} })).toBe(4);
    expect(sizer.gpusPerNode({ gpusPerNode: 0, gpuTypes: [], nodeSelector: { zone: 'x' } })).toBe(4);
    expect(sizer.gpusPerNode({ gpusPerNode: 2, gpuTypes: [], nodeSelector: {} })).toBe(2);
  });

  it('leaves 0 when no node matches, for the planner to refuse with its reason', () => {
    expect(sizer.gpusPerNode({ gpusPerNode: 0, gpuTypes: ['NVIDIA B200'], nodeSelector: {} })).toBe(0);
  });
});

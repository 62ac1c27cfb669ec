// A node with fewer GPUs than the job wants per node can never fit it, whatever runs there:
// a static misfit, reported apart from "insufficient free GPUs" (which waiting can fix).
import type { ClassFilterPlugin, NodeFilter } from '../../framework/types.js';

export const reasonGpuCount = (count: number): string => `node has ${count} GPUs`;

export const gpuCount: NodeFilter = (node, job) => (node.gpuCount < job.gpusPerNode ? reasonGpuCount(node.gpuCount) : undefined);

// gpusPerNode is part of every shape key already.
export const gpuCountPlugin: ClassFilterPlugin = { name: 'GpuCount', stage: 'class', key: () => '', filter: gpuCount };

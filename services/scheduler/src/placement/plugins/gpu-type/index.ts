// A job may accept several GPU models; an empty list accepts any.
import type { ClassFilterPlugin, NodeFilter } from '../../framework/types.js';

export const reasonGpuType = (model: string, wanted: readonly string[]): string => `gpu type ${model} not in [${wanted.join(', ')}]`;

export const gpuType: NodeFilter = (node, job) =>
  job.gpuTypes.length === 0 || job.gpuTypes.includes(node.gpuModel) ? undefined : reasonGpuType(node.gpuModel, job.gpuTypes);

export const gpuTypePlugin: ClassFilterPlugin = {
  name: 'GpuType',
  stage: 'class',
  key: (job) => (job.gpuTypes.length <= 1 ? (job.gpuTypes[0] ?? '') : [...job.gpuTypes].sort().join()),
  filter: gpuType,
};

// A job may accept several GPU models; an empty list accepts any.
import type { ClassFilterPlugin, NodeFilter } from '../../framework/types.js';

export const reasonGpuType = (model: string, wanted: readonly string[]): string => `gpu type ${model} not in [${wanted.join(', ')}]`;

export const gpuType: NodeFilter = (node, job) =>
  job.gpuTypes.length === 0 || job.gpuTypes.includes(node.gpuModel) ? undefined : reasonGpuType(node.gpuModel, job.gpuTypes);

export const gpuTypePlugin: ClassFilterPlugin = {
  name: 'GpuType',
  stage: 'class',
  key: (job) => typesKey(job.gpuTypes),
  filter: gpuType,
};

/** The job's GPU types sorted and joined: asked once per job per cycle, so two types (common) skip the copy and sort. */
function typesKey(types: readonly string[]): string {
  if (types.length <= 1) return types[0] ?? '';
  if (types.length === 2) {
    const [a, b] = types as [string, string];
    // What sort() would do: compare UTF-16 code units.
    return a <= b ? `${a},${b}` : `${b},${a}`;
  }
  return [...types].sort().join();
}

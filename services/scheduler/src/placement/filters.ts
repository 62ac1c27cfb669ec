// Node feasibility filters. Each returns undefined when the node fits, or the reason it
// does not; reasons are counted per job so `gantry job explain` can say why a job waits.
import type { JobRequest, NodeView } from './types.js';

export type NodeFilter = (node: NodeView, job: JobRequest) => string | undefined;

export const nodeReady: NodeFilter = (node) => (node.state === 'READY' ? undefined : `node ${node.state.toLowerCase()}`);

export const notExcluded: NodeFilter = (node, job) => (job.excludeNodes.includes(node.name) ? 'excluded by the job' : undefined);

export const gpuType: NodeFilter = (node, job) =>
  job.gpuTypes.length === 0 || job.gpuTypes.includes(node.gpuModel) ? undefined : `gpu type ${node.gpuModel} not in [${job.gpuTypes.join(', ')}]`;

export const nodeSelector: NodeFilter = (node, job) => {
  for (const [k, v] of Object.entries(job.nodeSelector)) {
    if (node.labels[k] !== v) return `label ${k}=${v} not matched`;
  }
  return undefined;
};

export const enoughGpus: NodeFilter = (node, job) =>
  node.gpuCount < job.gpusPerNode ? `node has ${node.gpuCount} GPUs` : node.freeGpus.length < job.gpusPerNode ? 'insufficient free GPUs' : undefined;

/** Order matters: the first failing filter names the reason, so cheap and decisive ones go first. */
export const defaultFilters: NodeFilter[] = [nodeReady, notExcluded, gpuType, nodeSelector, enoughGpus];

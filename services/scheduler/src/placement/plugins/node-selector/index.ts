// Every selector label must match exactly (Kubernetes nodeSelector semantics).
import type { ClassFilterPlugin, NodeFilter } from '../../framework/types.js';

export const reasonLabel = (key: string, value: string): string => `label ${key}=${value} not matched`;

export const nodeSelector: NodeFilter = (node, job) => {
  for (const [k, v] of Object.entries(job.nodeSelector)) {
    if (node.labels[k] !== v) return reasonLabel(k, v);
  }
  return undefined;
};

function hasSelector(job: { nodeSelector: Record<string, string> }): boolean {
  for (const _ in job.nodeSelector) return true;
  return false;
}

export const nodeSelectorPlugin: ClassFilterPlugin = {
  name: 'NodeSelector',
  stage: 'class',
  key: (job) => (hasSelector(job) ? JSON.stringify(Object.entries(job.nodeSelector).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : ''),
  labels: hasSelector,
  filter: nodeSelector,
};

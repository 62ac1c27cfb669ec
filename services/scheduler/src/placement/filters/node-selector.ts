// Every selector label must match exactly (Kubernetes nodeSelector semantics).
import type { NodeFilter } from './types.js';

export const reasonLabel = (key: string, value: string): string => `label ${key}=${value} not matched`;

export const nodeSelector: NodeFilter = (node, job) => {
  for (const [k, v] of Object.entries(job.nodeSelector)) {
    if (node.labels[k] !== v) return reasonLabel(k, v);
  }
  return undefined;
};

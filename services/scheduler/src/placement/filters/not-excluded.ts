// Jobs exclude nodes they failed on (recovery) or that users distrust.
import type { NodeFilter } from './types.js';

export const REASON_EXCLUDED = 'excluded by the job';

export const notExcluded: NodeFilter = (node, job) => (job.excludeNodes.includes(node.name) ? REASON_EXCLUDED : undefined);

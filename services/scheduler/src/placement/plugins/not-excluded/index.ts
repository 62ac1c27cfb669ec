// Jobs exclude nodes they failed on (recovery blames them) or that users distrust. Each job
// may carry its own list, so this is a job-stage filter: the shape's static fit is shared by
// jobs with different lists, and each job's list is applied to it as a post-filter.
import type { JobFilterPlugin, NodeFilter } from '../../framework/types.js';

export const REASON_EXCLUDED = 'excluded by the job';

export const notExcluded: NodeFilter = (node, job) => (job.excludeNodes.includes(node.name) ? REASON_EXCLUDED : undefined);

export const notExcludedPlugin: JobFilterPlugin = {
  name: 'NotExcluded',
  stage: 'job',
  affected(job, cycle, into) {
    for (const name of job.excludeNodes) {
      const i = cycle.state.byName.get(name);
      if (i !== undefined) into.push(i);
    }
  },
  rejects: REASON_EXCLUDED,
  filter: (node, _i, job) => notExcluded(node, job),
};

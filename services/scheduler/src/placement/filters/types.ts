import type { JobRequest, NodeView } from '../types.js';

/** What a capacity filter needs beyond the node itself, for the scenario being evaluated. */
export interface FilterContext {
  /** Free GPUs on the node in this scenario (now, or with preemption victims released). */
  free: number;
  /** Set when the node is part of the head job's backfill reservation. */
  reservation?: {
    jobId: string;
    /** GPUs on the node that are still spare at the reservation's start. */
    slack: number;
    /** Whether this job ends before the reservation starts (then it cannot delay it). */
    endsBefore: boolean;
  };
}

/**
 * A feasibility check. Returns undefined when the node fits, or the reason it does not; the
 * reason strings are the keys of a job's rejection counts, so a reason names the *kind* of
 * misfit (node-specific numbers stay out, except where they say what to change).
 */
export type NodeFilter = (node: NodeView, job: JobRequest, ctx?: FilterContext) => string | undefined;

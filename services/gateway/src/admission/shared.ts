// The request validation every service that accepts requests applies, in one module: the
// gateway's rules (validate.ts) behind the size bounds (limits.ts). The scheduler imports it
// as `@gantry/gateway/admission`, so a request sent straight to the scheduler is held to the
// same rules as one through the gateway.
import type { ListJobsRequest, ListNodesRequest, SubmitJobRequest } from '@gantry/proto';
import { checkBounds } from './limits.js';
import { requireToken, validateListJobs, validateListNodes, validateSubmit } from './validate.js';

export { LIMITS, RESERVED_ENV, requireToken } from './validate.js';
export { boundsProblems, checkBounds } from './limits.js';

/** Bounds, then every rule of a submission; returns the request with defaults filled in. */
export function admitSubmit(req: SubmitJobRequest): SubmitJobRequest {
  checkBounds(req);
  return validateSubmit(req);
}

export function admitListJobs(req: ListJobsRequest): ListJobsRequest {
  checkBounds(req);
  return validateListJobs(req);
}

export function admitListNodes(req: ListNodesRequest): ListNodesRequest {
  checkBounds(req);
  return validateListNodes(req);
}

/** A request naming one job or node: bounded, and a valid subject token. */
export function admitToken(field: string, value: string): void {
  checkBounds({ [field === 'job_id' ? 'jobId' : field]: value });
  requireToken(field, value);
}

// The rules of a SubmitJobs batch that gateway and scheduler share: its size bounds, and how
// one refused item is answered without failing the call.
import { status } from '@grpc/grpc-js';
import type { SubmitJobsResult } from '@gantry/proto';
import { invalidArgument, isTransientStoreError, toServiceError } from '@gantry/service-kit';

/**
 * Submissions per SubmitJobs call: a batch this size of typical specs stays far below gRPC's
 * 4 MiB message limit, and is written to Redis in one pipeline.
 */
export const MAX_SUBMIT_BATCH = 1000;

/** INVALID_ARGUMENT for an empty batch or one over MAX_SUBMIT_BATCH. */
export function admitBatchSize(n: number): void {
  if (n === 0) throw invalidArgument('jobs is empty: SubmitJobs needs at least one submission');
  if (n > MAX_SUBMIT_BATCH) throw invalidArgument(`jobs has ${n} submissions; SubmitJobs takes at most ${MAX_SUBMIT_BATCH} per call`);
}

/** Whether an error is one submission's refusal (a gRPC status), not a failure of the whole call. */
export function isItemRefusal(err: unknown): boolean {
  if (isTransientStoreError(err)) return false;
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'details' in err;
}

/** The result of a refused submission: the status SubmitJob would have failed with. */
export function itemError(index: number, err: unknown): SubmitJobsResult {
  const se = toServiceError(err);
  return { index, result: { $case: 'error', error: { code: se.code ?? status.UNKNOWN, message: se.details ?? '' } } };
}

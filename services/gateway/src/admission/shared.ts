// The request validation every service that accepts requests applies, in one module: the
// gateway's rules (validate.ts) behind the size bounds (limits.ts). The scheduler imports it
// as `@gantry/gateway/admission`, so a request sent straight to the scheduler is held to the
// same rules as one through the gateway.
import type { ListJobsRequest, ListNodesRequest, SubmitJobRequest } from '@gantry/proto';
import { isMalformed, strictService } from '@gantry/auth';
import { GrpcError, invalidArgument, toServiceError } from '@gantry/service-kit';
import { TELEMETRY_HISTORY_CAP } from '@gantry/store';
import { checkBounds } from './limits.js';
import { requireToken, validateListJobs, validateListNodes, validateSubmit } from './validate.js';

export { LIMITS, RESERVED_ENV, requireToken } from './validate.js';
export { boundsProblems, checkBounds } from './limits.js';
export { MAX_SUBMIT_BATCH, admitBatchSize, isItemRefusal, itemError } from './batch.js';

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

/**
 * A node telemetry history no longer than the store keeps: refused, not cut short, since a
 * caller would take the shorter history for all the node had.
 */
export function admitTelemetryHistory(history: number): void {
  if (history > TELEMETRY_HISTORY_CAP) throw invalidArgument(`history must be between 0 and ${TELEMETRY_HISTORY_CAP} (the batches kept per node), got ${history}`);
}

type Handler = (call: { request: unknown; emit(event: 'error', err: unknown): unknown }, callback?: (err: unknown, res?: unknown) => void) => void;

/**
 * The request checks every method of a service gets when no gateway guard stands in front of it
 * (the scheduler's API): requests decoded strictly (`strictService`: invalid UTF-8 or bytes that
 * are not the message are refused, never turned into U+FFFD), then held to the size and count
 * bounds above, all answered INVALID_ARGUMENT before the method runs. Returns the definition
 * and implementation to register.
 */
export function admitEvery<D extends Record<string, { requestStream: boolean; responseStream: boolean; requestDeserialize: (b: Buffer) => unknown }>, I extends object>(definition: D, impl: I): [D, I] {
  const wrapped: Record<string, Handler> = {};
  for (const [name, handler] of Object.entries(impl as Record<string, Handler>)) {
    const m = definition[name];
    const refusal = (request: unknown): GrpcError | undefined => {
      if (isMalformed(request)) return invalidArgument(request.reason);
      try {
        checkBounds(request);
        return undefined;
      } catch (err) {
        if (err instanceof GrpcError) return err;
        throw err;
      }
    };
    wrapped[name] = !m || m.requestStream ? handler : (call, callback) => {
      const refused = refusal(call.request);
      if (!refused) return handler(call, callback);
      if (callback) callback(toServiceError(refused), null);
      else call.emit('error', toServiceError(refused));
    };
  }
  return [strictService(definition), wrapped as I];
}

// Errors that cross the wire are gRPC statuses with a precise message, never a stack trace.
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';

export class GrpcError extends Error implements Partial<ServiceError> {
  override name = 'GrpcError';
  constructor(readonly code: status, readonly details: string) {
    super(details);
  }
  get metadata(): Metadata { return new Metadata(); }
}

export const invalidArgument = (msg: string) => new GrpcError(status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new GrpcError(status.NOT_FOUND, msg);
export const failedPrecondition = (msg: string) => new GrpcError(status.FAILED_PRECONDITION, msg);
export const unavailable = (msg: string) => new GrpcError(status.UNAVAILABLE, msg);
export const alreadyExists = (msg: string) => new GrpcError(status.ALREADY_EXISTS, msg);

/**
 * Errors of a Redis or NATS failing over or briefly unreachable: a write the replicas did not
 * confirm (the store's ReplicationError), a demoted or loading server, a dropped connection, a
 * NATS request timing out while a stream elects a new leader. The call can be retried (every
 * write is a compare-and-set, submissions are keyed), so they are UNAVAILABLE, which clients
 * retry, not INTERNAL.
 */
export function isTransientStoreError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; message?: unknown; code?: unknown };
  if (e.name === 'ReplicationError' || e.name === 'MaxRetriesPerRequestError') return true;
  const message = typeof e.message === 'string' ? e.message : '';
  // NATS: a request that timed out or found no responder (a JetStream stream electing a new
  // leader after a server died answers nothing for a few seconds), a closed connection, or
  // JetStream saying it is temporarily unavailable.
  if (typeof e.name === 'string' && ['TimeoutError', 'NoRespondersError', 'ClosedConnectionError', 'ConnectionError', 'RequestError'].includes(e.name)) return true;
  if (e.name === 'JetStreamApiError' && /temporarily unavailable|no suitable peers|insufficient resources/i.test(message)) return true;
  return /^(READONLY|LOADING|MASTERDOWN|NOREPLICAS|TRYAGAIN|CLUSTERDOWN)\b/.test(message)
    || message === 'Connection is closed.'
    || (typeof e.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(e.code));
}

/**
 * A status message travels in an HTTP/2 trailer: one of many kilobytes (a message quoting a
 * whole oversize input) is more than a peer accepts, and the connection is dropped, failing
 * every call on it. So any quoted string longer than 80 characters is cut to a prefix, and the
 * whole message to 1 KiB.
 */
export function boundDetails(details: string): string {
  let out = details.length <= 120 ? details : details.replace(/"(?:[^"\\]|\\.){80,}"/g, (q) => `${q.slice(0, 33)}…" (${q.length - 2} characters)`);
  if (out.length > 1024) out = `${out.slice(0, 1024)}… (message shortened)`;
  return out;
}

/** Anything thrown by a handler becomes a status (its message bounded); unexpected errors become INTERNAL without internals. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const bounded = toServiceErrorUnbounded(err);
  if (bounded.details === undefined || bounded.details.length <= 120) return bounded;
  const details = boundDetails(bounded.details);
  return { ...bounded, details, message: details };
}

function toServiceErrorUnbounded(err: unknown): Partial<ServiceError> {
  if (err instanceof GrpcError) return { code: err.code, details: err.details, message: err.details };
  if (isTransientStoreError(err)) {
    const details = 'the control plane\'s Redis or NATS is failing over or unreachable; retry';
    return { code: status.UNAVAILABLE, details, message: details };
  }
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as ServiceError).code === 'number' && 'details' in err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details, message: e.details };
  }
  return { code: status.INTERNAL, details: 'internal error', message: 'internal error' };
}

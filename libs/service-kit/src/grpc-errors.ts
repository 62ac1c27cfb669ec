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

/** Anything thrown by a handler becomes a status; unexpected errors become INTERNAL without internals. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof GrpcError) return { code: err.code, details: err.details, message: err.details };
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as ServiceError).code === 'number' && 'details' in err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details, message: e.details };
  }
  return { code: status.INTERNAL, details: 'internal error', message: 'internal error' };
}

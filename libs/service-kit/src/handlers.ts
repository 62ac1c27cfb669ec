// Adapters from async functions to grpc-js handlers, so every service converts errors the
// same way and never leaks a stack trace to a client.
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import { GrpcError, isTransientStoreError, toServiceError } from './grpc-errors.js';
import type { Logger } from './logger.js';

/** Statuses we raised, or that an upstream service returned, are answers, not faults. */
function expected(err: unknown): boolean {
  return err instanceof GrpcError || (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'details' in err);
}

export function unary<Req, Res>(log: Logger, method: string, fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    // Through a promise so a synchronous throw (e.g. validation) is handled like a rejection.
    Promise.resolve().then(() => fn(call.request, call)).then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (isTransientStoreError(err)) log.warn({ err: (err as Error).message, method }, 'Redis or NATS failing over; answered UNAVAILABLE');
        else if (!expected(err)) log.error({ err, method }, 'handler failed');
        callback(toServiceError(err), null);
      },
    );
  };
}

export function serverStream<Req, Res>(log: Logger, method: string, fn: (req: Req, call: ServerWritableStream<Req, Res>) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>): void => {
    Promise.resolve().then(() => fn(call.request, call)).then(
      () => call.end(),
      (err: unknown) => {
        if (isTransientStoreError(err)) log.warn({ err: (err as Error).message, method }, 'Redis or NATS failing over; answered UNAVAILABLE');
        else if (!expected(err)) log.error({ err, method }, 'stream handler failed');
        if (!call.cancelled) call.emit('error', toServiceError(err));
      },
    );
  };
}

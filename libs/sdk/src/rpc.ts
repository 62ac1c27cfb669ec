// The call machinery every service client shares: metadata, per-attempt deadlines, retries for
// unary calls, and server streams as async iterators. A new RPC is one line in a client class.
import { Metadata, type CallOptions as GrpcCallOptions, type ClientReadableStream, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { toGantryError } from './errors.js';
import { withRetry, type RetryClass } from './retry.js';
import type { ResolvedClientOptions } from './options.js';

/** Options of one call. */
export interface CallOptions {
  /** Deadline of each attempt, in ms; the client's `timeoutMs` for unary calls, none for streams. */
  timeoutMs?: number;
  /** Aborting cancels the call (and any pending retry) with CANCELLED. */
  signal?: AbortSignal;
  /** Metadata for this call only, on top of the client's. */
  metadata?: Record<string, string>;
}

/** The 4-argument overload every generated grpc-js unary method has. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export type ServerStreamMethod<Req, Res> = (
  request: Req,
  metadata?: Metadata,
  options?: Partial<GrpcCallOptions>,
) => ClientReadableStream<Res>;

export class Rpc {
  constructor(readonly options: ResolvedClientOptions) {}

  private metadata(extra: Record<string, string> | undefined): Metadata {
    const md = new Metadata();
    for (const [k, v] of Object.entries({ ...this.options.metadata, ...extra })) md.set(k, v);
    return md;
  }

  /** One unary call, retried per `retryClass`; every attempt gets its own deadline. */
  unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, retryClass: RetryClass, call: CallOptions = {}): Promise<Res> {
    const timeoutMs = call.timeoutMs ?? this.options.timeoutMs;
    const { signal } = call;
    const attempt = () =>
      new Promise<Res>((resolve, reject) => {
        signal?.throwIfAborted();
        const onAbort = () => pending.cancel();
        const pending = method(request, this.metadata(call.metadata), { deadline: Date.now() + timeoutMs }, (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve(res);
        });
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    return withRetry(attempt, { policy: this.options.retry, retryClass, signal, onRetry: this.options.onRetry });
  }

  /**
   * A server stream as an async iterator. The call starts on the first `next()`, the iterator
   * ends when the server ends the stream, a failure is thrown as a GantryError, and leaving the
   * loop early (break, return, throw) cancels the call so the server stops producing.
   * Streams are not retried: whether resuming is safe (and from where) is the caller's call.
   */
  async *serverStream<Req, Res>(method: ServerStreamMethod<Req, Res>, request: Req, call: CallOptions = {}): AsyncGenerator<Res, void, undefined> {
    if (call.signal?.aborted) throw toGantryError(call.signal.reason);
    const options = call.timeoutMs === undefined ? {} : { deadline: Date.now() + call.timeoutMs };
    const stream = method(request, this.metadata(call.metadata), options);
    // grpc-js emits the final status as an 'error' event, also after we cancelled and stopped
    // reading; an EventEmitter without an 'error' listener would throw it at the process.
    stream.on('error', () => {});
    const onAbort = () => stream.cancel();
    call.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const message of stream) yield message as Res;
    } catch (err) {
      throw toGantryError(err);
    } finally {
      call.signal?.removeEventListener('abort', onAbort);
      stream.cancel(); // a no-op when the stream already ended
    }
  }
}

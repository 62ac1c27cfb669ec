// One error type for everything the SDK throws, so callers branch on `code` (a gRPC status)
// instead of on message text, and the CLI can print `CODE: details` without a stack trace.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

export { status };

/** The name of a gRPC status code, e.g. 5 -> "NOT_FOUND". */
export function statusName(code: number): string {
  return status[code] ?? `STATUS_${code}`;
}

export class GantryError extends Error {
  override readonly name = 'GantryError';
  /** The gRPC status code (see the re-exported `status` enum). */
  readonly code: status;
  /** The status code's name, e.g. "NOT_FOUND". */
  readonly codeName: string;
  /** The server's message for the status, without the code prefix. */
  readonly details: string;
  /** Trailing metadata sent with the status, when the error came from the server. */
  readonly metadata: Metadata;

  constructor(code: status, details: string, options: { cause?: unknown; metadata?: Metadata } = {}) {
    super(`${statusName(code)}: ${details}`, { cause: options.cause });
    this.code = code;
    this.codeName = statusName(code);
    this.details = details;
    this.metadata = options.metadata ?? new Metadata();
  }

  /** True when `err` is a GantryError, and (when given) has one of `codes`. */
  static is(err: unknown, ...codes: status[]): err is GantryError {
    return err instanceof GantryError && (codes.length === 0 || codes.includes(err.code));
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/**
 * Normalises anything a call can throw: grpc-js ServiceErrors keep their status, an aborted
 * AbortSignal becomes CANCELLED, and anything else (a bug, a serialisation failure) UNKNOWN.
 */
export function toGantryError(err: unknown): GantryError {
  if (err instanceof GantryError) return err;
  if (isServiceError(err)) {
    // grpc-js leaves an empty "Resolution note: " at the end of some connection failures.
    const details = err.details.replace(/\s*Resolution note:\s*$/, '');
    return new GantryError(err.code, details, { cause: err, metadata: err.metadata });
  }
  if (err instanceof Error && err.name === 'AbortError') return new GantryError(status.CANCELLED, 'call aborted by the caller', { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new GantryError(status.UNKNOWN, message, { cause: err });
}

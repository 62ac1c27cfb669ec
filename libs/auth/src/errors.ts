// Refusals with a gRPC status and a precise message. The gateway turns them into statuses.
import { Metadata, status } from '@grpc/grpc-js';

export class AuthError extends Error {
  override name = 'AuthError';
  /** grpc-js reads `details` and `metadata` from a thrown error. */
  readonly details: string;
  readonly metadata: Metadata;
  constructor(readonly code: status, message: string, metadata: Record<string, string> = {}) {
    super(message);
    this.details = message;
    this.metadata = new Metadata();
    for (const [k, v] of Object.entries(metadata)) this.metadata.set(k, v);
  }
}

export const unauthenticated = (msg: string) => new AuthError(status.UNAUTHENTICATED, msg);
export const permissionDenied = (msg: string) => new AuthError(status.PERMISSION_DENIED, msg);

/** Configuration problems, named by the variable (`invalid configuration: VAR: ...`). */
export class AuthConfigError extends Error {
  override name = 'AuthConfigError';
  constructor(variable: string, problem: string) {
    super(`invalid configuration: ${variable}: ${problem}`);
  }
}

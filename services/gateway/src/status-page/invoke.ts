// Calls the gateway's own gRPC handlers in-process for the status page, so that a page request
// gets exactly what the same call over gRPC would: authentication from the same credentials
// (a bearer token from the HTTP Authorization header, or the TLS client certificate), the same
// rate limit, access rules, tenant scoping, redaction and audit (the Guard in ../auth/guard.ts).
import type { PeerCertificate } from 'node:tls';
import { Metadata, status, type handleUnaryCall, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';

/** Who is asking, as the HTTP request carries it. */
export interface Caller {
  /** The Authorization header, verbatim (absent when not sent). */
  authorization?: string;
  /** The client certificate of an HTTPS connection that presented one. */
  certificate?: PeerCertificate;
  /** "ip:port" of the HTTP peer (the rate limit of anonymous callers is per address). */
  peer: string;
}

/** A refusal or failure of an in-process call, with its gRPC status. */
export class CallError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
  }
}

export function invoke<Req, Res>(handler: handleUnaryCall<Req, Res>, request: Req, caller: Caller): Promise<Res> {
  const metadata = new Metadata();
  if (caller.authorization !== undefined) metadata.set('authorization', caller.authorization);
  // The members of a ServerUnaryCall that the Guard and the handlers read; nothing else is used.
  const call = {
    request,
    metadata,
    cancelled: false,
    getPeer: () => caller.peer,
    getAuthContext: () => (caller.certificate ? { transportSecurityType: 'ssl', sslPeerCertificate: caller.certificate } : {}),
  } as unknown as ServerUnaryCall<Req, Res>;
  return new Promise((resolve, reject) => {
    handler(call, (err: Partial<ServiceError> | null, res?: Res | null) => {
      if (err) reject(new CallError(err.code ?? status.UNKNOWN, err.details ?? err.message ?? 'call failed'));
      else resolve(res as Res);
    });
  });
}

/** The HTTP status a page request answers for a gRPC status. */
export function httpStatus(code: status): number {
  switch (code) {
    case status.UNAUTHENTICATED: return 401;
    case status.PERMISSION_DENIED: return 403;
    case status.RESOURCE_EXHAUSTED: return 429;
    case status.INVALID_ARGUMENT: return 400;
    case status.NOT_FOUND: return 404;
    case status.UNAVAILABLE: return 503;
    default: return 502;
  }
}

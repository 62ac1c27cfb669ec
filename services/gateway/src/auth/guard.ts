// Every gateway method goes through here: authenticate the caller (UNAUTHENTICATED), apply
// its rate limit (RESOURCE_EXHAUSTED with a retry hint), check the method's access rule from
// @gantry/auth's table (PERMISSION_DENIED), refuse malformed or non-UTF-8 requests and
// oversize fields (INVALID_ARGUMENT), run the handler with the principal, bound the error
// message it produces, and audit mutating calls. A method missing from the table is refused.
import type { PeerCertificate } from 'node:tls';
import { Metadata, status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import {
  AuthError, boundedDetails, hasRole, isMalformed, methodRule, permissionDenied, RateLimiter, type Authenticator, type Principal,
} from '@gantry/auth';
import { isTransientStoreError, toServiceError, type Logger } from '@gantry/service-kit';
import { Counter, type Registry } from 'prom-client';
import { checkBounds } from '../admission/limits.js';
import type { AuditLog } from './audit.js';

export interface CallContext {
  principal: Principal;
  /** What the call acts on and for which tenant, for the audit trail; handlers fill them in. */
  audit: { target: string; tenant: string };
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

const MAX_STREAMS_PER_PRINCIPAL = 64;

function peerCertificate(call: AnyCall): PeerCertificate | undefined {
  try {
    return call.getAuthContext().sslPeerCertificate;
  } catch {
    return undefined;
  }
}

/** A default audit target: the request's job id, node name or job name. */
function defaultTarget(req: unknown): { target: string; tenant: string } {
  const r = (req ?? {}) as { jobId?: unknown; name?: unknown; spec?: { name?: unknown; tenant?: unknown } };
  const s = (v: unknown) => (typeof v === 'string' ? v.slice(0, 128) : '');
  return { target: s(r.jobId) || s(r.name) || s(r.spec?.name), tenant: s(r.spec?.tenant) };
}

export class Guard {
  private readonly limiter: RateLimiter | undefined;
  private readonly streams = new Map<string, number>();
  private readonly refusals: Counter<'code' | 'method'>;

  constructor(readonly auth: Authenticator, private readonly log: Logger, private readonly audit: AuditLog | undefined, metrics: Registry) {
    const rl = auth.settings.rateLimit;
    this.limiter = rl === 'off' ? undefined : new RateLimiter(rl);
    this.refusals = new Counter({ name: 'gantry_gateway_refusals_total', help: 'Calls refused by the gateway before reaching a handler, by status and method', labelNames: ['code', 'method'], registers: [metrics] });
  }

  /** Authentication, rate limit, access rule, request shape: throws the refusal. */
  private async admit(path: string, call: AnyCall, seen: { principal?: Principal }): Promise<CallContext> {
    const principal = await this.auth.authenticate(call.metadata, peerCertificate(call));
    seen.principal = principal; // for the audit entry of a call refused below
    if (this.limiter) {
      const key = principal.method === 'none' ? `anonymous@${call.getPeer().replace(/:\d+$/, '')}` : `${principal.method}:${principal.subject}`;
      const d = this.limiter.take(key);
      if (!d.ok) {
        const { ratePerSec, burst } = this.limiter.limit;
        throw new AuthError(status.RESOURCE_EXHAUSTED, `rate limit of ${ratePerSec} calls/s (burst ${burst}) for ${principal.subject} exceeded; retry in ${d.retryAfterMs} ms`,
          { 'retry-after-ms': String(d.retryAfterMs), 'grpc-retry-pushback-ms': String(d.retryAfterMs) });
      }
    }
    const rule = methodRule(path);
    if (!rule) throw permissionDenied(`${path} is not permitted through this gateway`);
    const a = rule.access;
    if (a.kind === 'role' && !hasRole(principal, a.role)) throw permissionDenied(`${path.slice(path.lastIndexOf('/') + 1)} needs the ${a.role} role; ${principal.subject} has ${principal.roles.length ? principal.roles.join(', ') : 'no role'}`);
    if (a.kind === 'tenant' && !hasRole(principal, 'user')) throw permissionDenied(`${path.slice(path.lastIndexOf('/') + 1)} needs the user role (or above); ${principal.subject} has no role`);
    if (isMalformed(call.request)) throw new AuthError(status.INVALID_ARGUMENT, call.request.reason);
    checkBounds(call.request);
    return { principal, audit: defaultTarget(call.request) };
  }

  private finish(path: string, call: AnyCall, ctx: CallContext | undefined, err: unknown, seen: { principal?: Principal } = {}): Partial<ServiceError> | null {
    let se: Partial<ServiceError> | null = null;
    if (err !== undefined) {
      if (isTransientStoreError(err)) this.log.warn({ err: (err as Error).message, method: path }, 'store failing over; answered UNAVAILABLE');
      else if (!(err instanceof AuthError) && !(typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'details' in err)) this.log.error({ err, method: path }, 'handler failed');
      se = toServiceError(err);
      const details = boundedDetails(se.details ?? '');
      se = { code: se.code, details, message: details, metadata: err instanceof AuthError ? err.metadata : new Metadata() };
      if (!ctx) this.refusals.inc({ code: status[se.code ?? status.UNKNOWN] ?? 'UNKNOWN', method: path.slice(path.lastIndexOf('/') + 1) });
    }
    const rule = methodRule(path);
    const denied = se?.code === status.PERMISSION_DENIED;
    if (this.audit && (rule?.mutating || denied)) {
      const who = ctx?.principal ?? seen.principal;
      const target = ctx?.audit ?? defaultTarget(isMalformed(call.request) ? {} : call.request);
      this.audit.record({
        time: new Date(), subject: who?.subject ?? 'unauthenticated', authMethod: who?.method ?? '', method: path,
        target: target.target, tenant: target.tenant, outcome: se ? (status[se.code ?? status.UNKNOWN] ?? 'UNKNOWN') : 'OK', message: se?.details?.slice(0, 256) ?? '', peer: call.getPeer(),
      });
    }
    return se;
  }

  unary<Req, Res>(path: string, fn: (req: Req, ctx: CallContext, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      let ctx: CallContext | undefined;
      const seen: { principal?: Principal } = {};
      this.admit(path, call as AnyCall, seen).then((c) => { ctx = c; return fn(call.request, c, call); }).then(
        (res) => { this.finish(path, call as AnyCall, ctx, undefined); callback(null, res); },
        (err: unknown) => callback(this.finish(path, call as AnyCall, ctx, err, seen), null),
      );
    };
  }

  serverStream<Req, Res>(path: string, fn: (req: Req, ctx: CallContext, call: ServerWritableStream<Req, Res>) => Promise<void>) {
    return (call: ServerWritableStream<Req, Res>): void => {
      let ctx: CallContext | undefined;
      let key: string | undefined;
      const seen: { principal?: Principal } = {};
      const release = () => { if (key) { const n = (this.streams.get(key) ?? 1) - 1; if (n <= 0) this.streams.delete(key); else this.streams.set(key, n); key = undefined; } };
      this.admit(path, call as AnyCall, seen).then((c) => {
        ctx = c;
        // Streams hold gateway resources for long: a bounded number per principal.
        const k = `${c.principal.method}:${c.principal.subject}`;
        const open = this.streams.get(k) ?? 0;
        if (c.principal.method !== 'none' && open >= MAX_STREAMS_PER_PRINCIPAL) {
          throw new AuthError(status.RESOURCE_EXHAUSTED, `${c.principal.subject} has ${open} streams open (at most ${MAX_STREAMS_PER_PRINCIPAL}); close some and retry`, { 'retry-after-ms': '1000' });
        }
        this.streams.set(k, open + 1);
        key = k;
        return fn(call.request, c, call);
      }).then(
        () => { release(); call.end(); },
        (err: unknown) => {
          release();
          const se = this.finish(path, call as AnyCall, ctx, err, seen);
          if (!call.cancelled && se) call.emit('error', se);
        },
      );
    };
  }
}

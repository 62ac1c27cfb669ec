// Storage admission for a job's ranks (issue 11), served on the checkpoint endpoint
// (endpoint.ts) with the same per-job token: "may I write now?" and "I am done".
//
//   POST /v1/storage/acquire  {"mode": "write"|"read", "rank": 3, "wait_ms": 10000, "ttl_ms": 0}
//        -> 200 {"granted": true, "lease_id", "target", "expires_at", "limit", "leases"}
//           or  {"granted": false, "position", "limit", "leases"} (ask again to keep the place)
//   POST /v1/storage/renew    {"lease_id", "target", "ttl_ms"} -> 200 {"lease_id", "expires_at"}; 404 once gone
//   POST /v1/storage/release  {"lease_id", "target"}          -> 200 {"released": 0|1}
//
// The agent calls the checkpoint service's gRPC StorageService (GANTRY_CHECKPOINT_ADDR /
// checkpointAddr in agent.yaml), over internal mutual TLS when INTERNAL_TLS_* are set. The lease is for the job's checkpoint directory: the service
// picks the storage target whose mount prefix holds it. The holder is (job, attempt) from the
// token, the rank the caller names (its global RANK) and this node, so a rank can only take,
// renew or give back leases of its own job attempt. Leases this agent handed out are released
// when the attempt's last rank on this host exits (the service's TTL and reaper are the
// backstop when the agent itself is gone).
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  StorageLeaseMode,
  StorageServiceClient,
  type AcquireStorageLeaseResponse,
  type ReleaseStorageLeaseResponse,
  type RenewStorageLeaseResponse,
} from '@gantry/proto';
import { internalChannelCredentials, internalChannelOptions, internalTls } from '@gantry/service-kit/internal-tls';
import { internalTlsVariables } from '../config.js';
import type { TokenRecord } from './state.js';

/** The longest a single acquire waits at the service (its own bound is 60 s). */
const MAX_WAIT_MS = 60_000;
const DEFAULT_WAIT_MS = 10_000;

export class StorageRouteError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** gRPC status -> the HTTP code the Python module understands (503: retry; others: raise). */
function httpCode(err: grpc.ServiceError): number {
  switch (err.code) {
    case grpc.status.INVALID_ARGUMENT: return 400;
    case grpc.status.NOT_FOUND: return 404;
    case grpc.status.FAILED_PRECONDITION: return 409;
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.RESOURCE_EXHAUSTED: return 503;
    default: return 502;
  }
}

const attemptKey = (t: Pick<TokenRecord, 'jobId' | 'attempt'>) => `${t.jobId}\u0000${t.attempt}`;

function int(body: Record<string, unknown>, name: string, dflt: number, max: number): number {
  const v = body[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw new StorageRouteError(400, `${name} must be an integer between 0 and ${max}`);
  return v;
}

function leaseIdOf(body: Record<string, unknown>, tok: TokenRecord): string {
  const id = body.lease_id;
  if (typeof id !== 'string' || !id) throw new StorageRouteError(400, 'lease_id is required');
  // "{w|r}:{job}:{attempt}:{rank}": only leases of the token's own job attempt.
  const parts = id.split(':');
  if (parts.length !== 4 || (parts[0] !== 'w' && parts[0] !== 'r') || parts[1] !== tok.jobId || parts[2] !== String(tok.attempt)) {
    throw new StorageRouteError(403, `lease ${id} does not belong to job ${tok.jobId} attempt ${tok.attempt}`);
  }
  return id;
}

export class StorageRoute {
  private readonly client: StorageServiceClient | undefined;
  /** Leases handed out through this agent, per job attempt: lease id -> target. */
  private readonly held = new Map<string, Map<string, string>>();

  /** Throws ConfigError naming the INTERNAL_TLS_* variable when the TLS files are unusable (loadAgentConfig checked them already). */
  constructor(readonly address: string | undefined, private readonly node: string, private readonly log: Logger, tlsFiles: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string } = {}) {
    const tls = internalTls(internalTlsVariables(tlsFiles));
    this.client = address ? new StorageServiceClient(address, internalChannelCredentials(tls), internalChannelOptions(tls)) : undefined;
  }

  private svc(): StorageServiceClient {
    if (!this.client) throw new StorageRouteError(501, 'storage admission is not configured on this agent (set GANTRY_CHECKPOINT_ADDR or checkpointAddr in agent.yaml to the checkpoint service)');
    return this.client;
  }

  private call<Res>(method: (req: never, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: unknown, timeoutMs: number): Promise<Res> {
    const client = this.svc();
    return new Promise((resolve, reject) => {
      method.call(client, req as never, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new StorageRouteError(httpCode(err), `checkpoint service ${this.address}: ${err.details || err.message}`));
        else resolve(res as Res);
      });
    });
  }

  async acquire(tok: TokenRecord, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const mode = body.mode ?? 'write';
    if (mode !== 'write' && mode !== 'read') throw new StorageRouteError(400, 'mode must be "write" or "read"');
    const rank = int(body, 'rank', 0, 2 ** 31);
    const waitMs = int(body, 'wait_ms', DEFAULT_WAIT_MS, MAX_WAIT_MS);
    const ttlMs = int(body, 'ttl_ms', 0, 3_600_000);
    const client = this.svc();
    const res = await this.call<AcquireStorageLeaseResponse>(client.acquireStorageLease, {
      // The job's named target if it has one, else the one whose mount prefix holds its directory.
      target: tok.storageTarget ?? '', path: tok.storageTarget ? '' : tok.dir,
      mode: mode === 'write' ? StorageLeaseMode.STORAGE_LEASE_MODE_WRITE : StorageLeaseMode.STORAGE_LEASE_MODE_READ,
      holder: { jobId: tok.jobId, attempt: tok.attempt, rank, node: this.node },
      ttlMs, waitMs,
    }, waitMs + 10_000);
    if (!res.granted || !res.lease) return { granted: false, position: res.position, limit: res.limit, leases: res.leases };
    const key = attemptKey(tok);
    if (!this.held.has(key)) this.held.set(key, new Map());
    this.held.get(key)!.set(res.lease.id, res.lease.target);
    return { granted: true, lease_id: res.lease.id, target: res.lease.target, mode, expires_at: res.lease.expiresAt?.toISOString() ?? null, limit: res.limit, leases: res.leases };
  }

  /**
   * The lease's target: remembered from the acquire, else the one the caller names (a restarted
   * agent has forgotten; the lease id already proved it is the token's own job attempt).
   */
  private targetOf(tok: TokenRecord, id: string, body: Record<string, unknown>): string | undefined {
    const target = this.held.get(attemptKey(tok))?.get(id) ?? body.target;
    if (target !== undefined && typeof target !== 'string') throw new StorageRouteError(400, 'target must be a string');
    return target || undefined;
  }

  async renew(tok: TokenRecord, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = leaseIdOf(body, tok);
    const ttlMs = int(body, 'ttl_ms', 0, 3_600_000);
    const target = this.targetOf(tok, id, body);
    if (!target) throw new StorageRouteError(400, `target is required for lease ${id} (not granted through this agent process)`);
    const client = this.svc();
    try {
      const res = await this.call<RenewStorageLeaseResponse>(client.renewStorageLease, { target, leaseId: id, ttlMs }, 10_000);
      return { lease_id: id, target, expires_at: res.lease?.expiresAt?.toISOString() ?? null };
    } catch (err) {
      if (err instanceof StorageRouteError && err.code === 404) this.held.get(attemptKey(tok))?.delete(id);
      throw err;
    }
  }

  async release(tok: TokenRecord, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = leaseIdOf(body, tok);
    const target = this.targetOf(tok, id, body);
    if (!target) return { released: 0 };
    const client = this.svc();
    const res = await this.call<ReleaseStorageLeaseResponse>(client.releaseStorageLease, { target, leaseId: id, jobId: '', attempt: 0 }, 10_000);
    this.held.get(attemptKey(tok))?.delete(id);
    return { released: res.released };
  }

  /** The attempt's last rank on this host exited: give back what its ranks still hold here. */
  releaseAttempt(jobId: string, attempt: number): void {
    const key = attemptKey({ jobId, attempt });
    const leases = this.held.get(key);
    this.held.delete(key);
    if (!leases || !this.client) return;
    for (const [id, target] of leases) {
      void this.call<ReleaseStorageLeaseResponse>(this.client.releaseStorageLease, { target, leaseId: id, jobId: '', attempt: 0 }, 10_000)
        .then((r) => this.log.info({ job: jobId, attempt, lease: id, released: r.released }, 'storage lease of an exited attempt released'),
          (err: unknown) => this.log.warn({ job: jobId, attempt, lease: id, err: (err as Error).message }, 'storage lease release failed; it expires with its TTL'));
    }
  }

  close(): void {
    this.client?.close();
  }
}

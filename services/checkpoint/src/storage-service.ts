// gantry.v1.StorageService and the admission controller behind it.
//
// Leases live in Redis (StorageLeaseStore: Lua CAS, TTL, FIFO waiters). Every control interval
// the controller reads the agents' NFS client telemetry and the cluster health through the
// scheduler's gRPC NodeService (ListNodes + GetNodeTelemetry, GetClusterHealth), never the
// scheduler's Redis keys, aggregates the target's mounts (storage-admission.ts), runs one AIMD
// step per pool and writes the new limit. Without SCHEDULER_ADDR the pools keep their initial
// size. One controller per checkpoint service: with several replicas each would step the
// limits (see docs/storage.md).
import * as grpc from '@grpc/grpc-js';
import { admitEvery } from '@gantry/gateway/admission';
import type { Redis } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  JobServiceClient,
  JobState,
  NodeServiceClient,
  type GetJobResponse,
  StorageLeaseMode,
  StorageServiceService,
  type AcquireStorageLeaseRequest,
  type AcquireStorageLeaseResponse,
  type GetClusterHealthResponse,
  type GetStorageTargetRequest,
  type GetStorageTargetResponse,
  type ListStorageTargetsRequest,
  type ListStorageTargetsResponse,
  type ReleaseStorageLeaseRequest,
  type ReleaseStorageLeaseResponse,
  type RenewStorageLeaseRequest,
  type RenewStorageLeaseResponse,
  type ListNodesResponse,
  type GetNodeTelemetryResponse,
  type StorageLease,
  type StorageLeaseHolder,
  type StoragePool,
  type StorageServiceServer,
  type StorageTarget,
  type TelemetryBatch,
} from '@gantry/proto';
import { StorageLeaseStore, parseStorageLeaseId, type StorageHolder, type StorageMode } from '@gantry/store';
import { internalChannelCredentials, internalChannelOptions, invalidArgument, notFound, unary, type InternalTls, type Logger, type ServiceContext } from '@gantry/service-kit';
import { aggregateTelemetry, aimdStateOf, aimdStep, mountBelongs, poolView, type StorageSignals } from './storage-admission.js';
import { loadStorageConfig, type StorageConfig, type StorageTargetConfig } from './storage-config.js';
import { serveStorageHttp } from './storage-http.js';

export const STORAGE_SERVICE_NAME = 'gantry.v1.StorageService';
const MODES: StorageMode[] = ['write', 'read'];
const MAX_WAIT_MS = 60_000;
const POLL_MS = 100;

/**
 * Hands a freed slot to the next waiter without a poll gap: a waiting AcquireStorageLease
 * sleeps until its next poll or until this process releases a lease of that pool, raises its
 * limit, or reaps an attempt's leases; then the waiters the lease store would grant now
 * (`StorageLeaseStore.grantable`: FIFO, passing over those whose node holds its share) ask again
 * at once, and only they, so a long queue is not woken whole. Releases through another replica
 * of the service are seen at the next poll, as before.
 */
export class LeaseWakeup {
  private readonly waiting = new Map<string, Map<string, Set<() => void>>>();

  /** Resolves after `ms`, or earlier when `id` is woken. */
  sleep(target: string, mode: StorageMode, id: string, ms: number): Promise<void> {
    const key = `${target}\u0000${mode}`;
    return new Promise((resolve) => {
      const pool = this.waiting.get(key) ?? new Map<string, Set<() => void>>();
      this.waiting.set(key, pool);
      // A holder may have several calls waiting (a client retrying): each sleeps on its own.
      const sleepers = pool.get(id) ?? new Set<() => void>();
      pool.set(id, sleepers);
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        if (sleepers.size === 0 && pool.get(id) === sleepers) pool.delete(id);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });
  }

  /** Wakes the sleepers of `ids` (the lease ids the store would grant now). */
  notify(target: string, mode: StorageMode, ids: readonly string[]): void {
    const pool = this.waiting.get(`${target}\u0000${mode}`);
    if (!pool) return;
    for (const id of ids) for (const wake of [...(pool.get(id) ?? [])]) wake();
  }
}

const toProtoMode = (m: StorageMode) => (m === 'write' ? StorageLeaseMode.STORAGE_LEASE_MODE_WRITE : StorageLeaseMode.STORAGE_LEASE_MODE_READ);
function fromProtoMode(m: StorageLeaseMode): StorageMode {
  if (m === StorageLeaseMode.STORAGE_LEASE_MODE_WRITE) return 'write';
  if (m === StorageLeaseMode.STORAGE_LEASE_MODE_READ) return 'read';
  throw invalidArgument('mode must be STORAGE_LEASE_MODE_WRITE or STORAGE_LEASE_MODE_READ');
}
const ts = (ms: number) => new Date(ms);

/**
 * What this process last saw and decided, for `show` and metrics. The state that decides the
 * limit (the AIMD counters) is in Redis beside the limit, not here: a restarted service
 * continues from it.
 */
interface PoolRuntime {
  reason: string;
  updatedMs: number;
  signals: StorageSignals | undefined;
  /** Has this process stepped the pool yet? Before that, `show` gives the stored reason. */
  stepped: boolean;
}

interface TargetRuntime {
  cfg: StorageTargetConfig;
  degraded: boolean;
  pools: Record<StorageMode, PoolRuntime>;
  observedMs: number;
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;
function call<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, req: Req, timeoutMs = 5_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/** Telemetry and health as the controller gets them; the gRPC NodeService by default, a stub in tests. */
export interface ClusterView {
  telemetry(): Promise<TelemetryBatch[]>;
  storageFaults(): Promise<string[]>;
  /** The job's current attempt and state; undefined when the scheduler does not know it. */
  job(jobId: string): Promise<{ attempt: number; state: JobState } | undefined>;
  close(): void;
}

/** Job states in which the given attempt's ranks are gone or being stopped. */
const ATTEMPT_OVER = new Set<JobState>([
  JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED,
  JobState.JOB_STATE_RECOVERING, JobState.JOB_STATE_PREEMPTED,
]);

/** Has the attempt ended (the job moved on to a later attempt, or the attempt stopped)? */
export function attemptOver(job: { attempt: number; state: JobState }, attempt: number): boolean {
  return job.attempt > attempt || (job.attempt === attempt && ATTEMPT_OVER.has(job.state));
}

/** With `tls`, over internal mutual TLS (the scheduler asks for this service's certificate). */
export function nodeServiceView(address: string, tls?: InternalTls): ClusterView {
  const many = address.includes(',');
  const creds = internalChannelCredentials(tls);
  const options: grpc.ChannelOptions = { ...internalChannelOptions(tls), ...(many ? { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) } : {}) };
  const client = new NodeServiceClient(many ? `ipv4:${address}` : address, creds, options);
  const jobs = new JobServiceClient(many ? `ipv4:${address}` : address, creds, { ...options, channelOverride: client.getChannel() });
  return {
    async job(jobId) {
      try {
        const res = await call<unknown, GetJobResponse>(jobs, jobs.getJob as Unary<unknown, GetJobResponse>, { jobId });
        return res.job ? { attempt: res.job.attempt, state: res.job.state } : undefined;
      } catch (err) {
        if ((err as { code?: number }).code === grpc.status.NOT_FOUND) return undefined;
        throw err;
      }
    },
    async telemetry() {
      const names: string[] = [];
      let pageToken = '';
      do {
        const res = await call<unknown, ListNodesResponse>(client, client.listNodes as Unary<unknown, ListNodesResponse>, { states: [], pageSize: 5000, pageToken });
        names.push(...res.nodes.map((n) => n.name));
        pageToken = res.nextPageToken;
      } while (pageToken);
      const out: TelemetryBatch[] = [];
      // A few at a time: a thousand nodes is a thousand small reads of the scheduler's store.
      for (let i = 0; i < names.length; i += 32) {
        const got = await Promise.all(names.slice(i, i + 32).map((name) =>
          call<unknown, GetNodeTelemetryResponse>(client, client.getNodeTelemetry as Unary<unknown, GetNodeTelemetryResponse>, { name, history: 0 }).catch(() => undefined)));
        for (const r of got) if (r?.latest) out.push(r.latest);
      }
      return out;
    },
    async storageFaults() {
      const res = await call<unknown, GetClusterHealthResponse>(client, client.getClusterHealth as Unary<unknown, GetClusterHealthResponse>, {});
      return res.sharedFaults.filter((f) => f.kind === 'storage' && f.active).map((f) => f.target);
    },
    close: () => {
      jobs.close();
      client.close();
    },
  };
}

/** Does the health detector's storage target (server:export) name this target? */
export function faultMatches(fault: string, t: StorageTargetConfig): boolean {
  return fault === t.serverExport || fault === t.name || (t.serverExport.includes(':') && fault.startsWith(t.serverExport + '/'));
}

export class StorageAdmission {
  readonly store: StorageLeaseStore;
  readonly wakeup = new LeaseWakeup();
  readonly targets = new Map<string, TargetRuntime>();
  private timer: NodeJS.Timeout | undefined;
  private stepping = false;
  /** Called with each controller decision (metrics count them by action). */
  onDecision: ((target: string, mode: StorageMode, reason: string) => void) | undefined;

  constructor(redis: Redis, readonly config: StorageConfig, private readonly view: ClusterView | undefined, private readonly log: Logger) {
    this.store = new StorageLeaseStore(redis);
    const now = Date.now();
    for (const cfg of config.targets) {
      const pool = (): PoolRuntime => ({ reason: view ? 'initial' : 'fixed: no SCHEDULER_ADDR, no telemetry', updatedMs: now, signals: undefined, stepped: false });
      this.targets.set(cfg.name, { cfg, degraded: false, pools: { write: pool(), read: pool() }, observedMs: 0 });
    }
  }

  start(): void {
    if (!this.view || this.targets.size === 0) return;
    this.timer = setInterval(() => void this.step(), this.config.controlIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.view?.close();
  }

  target(name: string): TargetRuntime {
    const t = this.targets.get(name);
    if (!t) throw notFound(`storage target ${JSON.stringify(name)} is not configured (have: ${[...this.targets.keys()].join(', ') || 'none'})`);
    return t;
  }

  /** The target whose mount prefix holds `path` (the longest prefix wins). */
  targetForPath(path: string): TargetRuntime {
    let best: TargetRuntime | undefined;
    for (const t of this.targets.values()) {
      if ((path === t.cfg.mountPrefix || path.startsWith(t.cfg.mountPrefix.replace(/\/$/, '') + '/')) && (!best || t.cfg.mountPrefix.length > best.cfg.mountPrefix.length)) best = t;
    }
    if (!best) throw notFound(`no storage target has a mount prefix holding ${JSON.stringify(path)}`);
    return best;
  }

  /** One controller round over every target; also callable directly (tests). */
  async step(): Promise<void> {
    if (this.stepping || !this.view) return;
    this.stepping = true;
    try {
      const [batches, faults] = await Promise.all([
        this.view.telemetry().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'storage: telemetry unavailable'); return undefined; }),
        this.view.storageFaults().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'storage: cluster health unavailable'); return undefined; }),
      ]);
      const now = Date.now();
      // Stale batches (an agent gone quiet) say nothing about the present.
      const fresh = batches?.filter((b) => !b.time || now - b.time.getTime() <= 3 * this.config.controlIntervalMs + 30_000);
      for (const t of this.targets.values()) {
        if (faults) {
          const degraded = faults.some((f) => faultMatches(f, t.cfg));
          if (degraded !== t.degraded) this.log.warn({ target: t.cfg.name, degraded }, 'storage target health changed');
          t.degraded = degraded;
        }
        if (fresh) t.observedMs = now;
        for (const mode of MODES) {
          const pr = t.pools[mode];
          const bounds = t.cfg[mode];
          if (!fresh && !t.degraded) {
            // No telemetry this round: neither grow blind nor shrink on stale figures.
            Object.assign(pr, { reason: 'hold: telemetry unavailable', updatedMs: now });
            continue;
          }
          const signals = fresh ? aggregateTelemetry(fresh, t.cfg.mountPrefix, mode, t.cfg.rpcSlots) : pr.signals;
          const state = await this.store.state(t.cfg.name, mode);
          const limit = state.limit ?? bounds.initial;
          const capacity = { bytesPerSecond: mode === 'write' ? t.cfg.writeBytesPerSecond : t.cfg.readBytesPerSecond, clientBytesPerSecond: t.cfg.clientBytesPerSecond };
          const d = aimdStep(poolView(state, limit, bounds.perNode), bounds, capacity, signals, t.degraded, aimdStateOf(state.controller?.state), t.cfg.aimd);
          // The limit and the counters behind it in one write, every step: a restarted service
          // holds or decays from where this one was.
          await this.store.setLimit(t.cfg.name, mode, d.limit, { state: { ...d.state }, reason: d.reason, atMs: now });
          if (d.limit !== limit) {
            if (d.limit > limit) await this.wake(t, mode);
            this.log.info({ target: t.cfg.name, mode, from: limit, to: d.limit, reason: d.reason }, 'storage pool resized');
          }
          Object.assign(pr, { reason: d.reason, updatedMs: now, signals, stepped: true });
          this.onDecision?.(t.cfg.name, mode, d.reason);
        }
      }
      await this.reap();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'storage controller step failed');
    } finally {
      this.stepping = false;
    }
  }

  /**
   * Releases the leases and queue places of attempts that are over (the job finished, stopped
   * for recovery or preemption, or moved to a later attempt), without waiting for their TTL.
   * Jobs the scheduler does not know are left to the TTL.
   */
  async reap(): Promise<number> {
    if (!this.view) return 0;
    let released = 0;
    const verdict = new Map<string, Promise<{ attempt: number; state: JobState } | undefined>>();
    for (const t of this.targets.values()) {
      for (const mode of MODES) {
        const st = await this.store.state(t.cfg.name, mode);
        const attempts = new Map<string, StorageHolder>();
        for (const h of [...st.leases.map((l) => l.holder), ...st.waiters.map((w) => w.holder)]) attempts.set(`${h.jobId}\u0000${h.attempt}`, h);
        for (const h of attempts.values()) {
          if (!verdict.has(h.jobId)) verdict.set(h.jobId, this.view.job(h.jobId).catch(() => undefined));
          const job = await verdict.get(h.jobId);
          if (job && attemptOver(job, h.attempt)) {
            const n = await this.store.releaseAttempt(t.cfg.name, mode, h.jobId, h.attempt);
            if (n > 0) await this.wake(t, mode);
            if (n > 0) this.log.info({ target: t.cfg.name, mode, job: h.jobId, attempt: h.attempt, released: n, state: JobState[job.state], current: job.attempt }, 'storage leases of a finished attempt released');
            released += n;
          }
        }
      }
    }
    return released;
  }

  /** Wakes the waiters of the pool that may take a lease now (after a release or a raised limit). */
  async wake(t: TargetRuntime, mode: StorageMode): Promise<void> {
    try {
      this.wakeup.notify(t.cfg.name, mode, await this.store.grantable(t.cfg.name, mode, t.cfg[mode].initial, t.cfg[mode].perNode));
    } catch (err) {
      // They still ask again at their next poll.
      this.log.warn({ err: (err as Error).message, target: t.cfg.name, mode }, 'storage: waking waiters failed');
    }
  }

  async show(t: TargetRuntime): Promise<StorageTarget> {
    const [w, r] = await Promise.all(MODES.map((m) => this.store.state(t.cfg.name, m)));
    const pool = (mode: StorageMode, s: NonNullable<typeof w>): StoragePool => {
      const pr = t.pools[mode];
      // Until this process steps the pool, the reason is the one stored with the limit (by an
      // earlier run of the service).
      const stored = this.view && !pr.stepped ? s.controller : undefined;
      return {
        mode: toProtoMode(mode),
        limit: s.limit ?? t.cfg[mode].initial,
        min: t.cfg[mode].min,
        max: t.cfg[mode].max,
        perNode: t.cfg[mode].perNode,
        leases: s.leases.length,
        waiters: s.waiters.length,
        reason: stored ? stored.reason : pr.reason,
        updatedAt: ts(stored ? stored.atMs : pr.updatedMs),
      };
    };
    const ws = t.pools.write.signals;
    const rs = t.pools.read.signals;
    const any = ws ?? rs;
    const leases = (mode: StorageMode, s: NonNullable<typeof w>): StorageLease[] => s.leases.map((l) => ({
      id: l.id, target: t.cfg.name, mode: toProtoMode(mode), holder: toProtoHolder(l.holder), acquiredAt: ts(l.acquiredMs), expiresAt: ts(l.expiresMs),
    }));
    return {
      name: t.cfg.name,
      mountPrefix: t.cfg.mountPrefix,
      serverExport: t.cfg.serverExport,
      writeBytesPerSecond: t.cfg.writeBytesPerSecond,
      readBytesPerSecond: t.cfg.readBytesPerSecond,
      rpcSlots: t.cfg.rpcSlots,
      leaseTtlMs: t.cfg.leaseTtlMs,
      degraded: t.degraded,
      writePool: pool('write', w!),
      readPool: pool('read', r!),
      telemetry: any ? {
        nodes: any.nodes,
        backlogQueueLength: Math.max(ws?.backlog ?? 0, rs?.backlog ?? 0),
        avgRttMs: ws?.rttMs ?? rs?.rttMs ?? 0,
        slotTableUtilization: Math.max(ws?.slotUtilization ?? 0, rs?.slotUtilization ?? 0),
        readBytesPerSecond: rs?.bytesPerSecond ?? 0,
        writeBytesPerSecond: ws?.bytesPerSecond ?? 0,
        observedAt: t.observedMs ? ts(t.observedMs) : undefined,
      } : undefined,
      leases: [...leases('write', w!), ...leases('read', r!)],
      waiters: [
        ...w!.waiters.map((x) => ({ holder: toProtoHolder(x.holder), mode: toProtoMode('write'), since: ts(x.sinceMs), position: x.position })),
        ...r!.waiters.map((x) => ({ holder: toProtoHolder(x.holder), mode: toProtoMode('read'), since: ts(x.sinceMs), position: x.position })),
      ],
    };
  }
}

function toProtoHolder(h: StorageHolder): StorageLeaseHolder {
  return { jobId: h.jobId, attempt: h.attempt, rank: h.rank, node: h.node ?? '' };
}

function holderOf(h: StorageLeaseHolder | undefined): StorageHolder {
  if (!h || !h.jobId) throw invalidArgument('holder.job_id is required');
  if (h.jobId.length > 128 || /\s/.test(h.jobId)) throw invalidArgument('holder.job_id must be at most 128 characters without spaces');
  if (h.node.length > 253) throw invalidArgument('holder.node must be at most 253 characters');
  return { jobId: h.jobId, attempt: h.attempt, rank: h.rank, ...(h.node ? { node: h.node } : {}) };
}

function ttlOf(ttlMs: number, t: TargetRuntime): number {
  if (ttlMs === 0) return t.cfg.leaseTtlMs;
  if (ttlMs < 500 || ttlMs > 3_600_000) throw invalidArgument(`ttl_ms must be between 500 and 3600000, got ${ttlMs}`);
  return ttlMs;
}

/** The calls as plain async functions (GrpcError on bad input), shared by gRPC and the HTTP mapping. */
export interface StorageCalls {
  listStorageTargets(req: ListStorageTargetsRequest): Promise<ListStorageTargetsResponse>;
  getStorageTarget(req: GetStorageTargetRequest): Promise<GetStorageTargetResponse>;
  acquireStorageLease(req: AcquireStorageLeaseRequest, cancelled?: () => boolean): Promise<AcquireStorageLeaseResponse>;
  renewStorageLease(req: RenewStorageLeaseRequest): Promise<RenewStorageLeaseResponse>;
  releaseStorageLease(req: ReleaseStorageLeaseRequest): Promise<ReleaseStorageLeaseResponse>;
}

export function storageCalls(adm: StorageAdmission): StorageCalls {
  return {
    listStorageTargets: async () => ({
      targets: await Promise.all([...adm.targets.values()].map((t) => adm.show(t))),
    }),

    getStorageTarget: async (req) => ({ target: await adm.show(adm.target(req.name)) }),

    acquireStorageLease: async (req, cancelled = () => false) => {
      const t = req.target ? adm.target(req.target) : req.path ? adm.targetForPath(req.path) : undefined;
      if (!t) throw invalidArgument('target or path is required');
      const mode = fromProtoMode(req.mode);
      const holder = holderOf(req.holder);
      const ttl = ttlOf(req.ttlMs, t);
      if (req.waitMs > MAX_WAIT_MS) throw invalidArgument(`wait_ms must be at most ${MAX_WAIT_MS}, got ${req.waitMs}`);
      const deadline = Date.now() + req.waitMs;
      for (;;) {
        const r = await adm.store.acquire(t.cfg.name, mode, holder, ttl, t.cfg[mode].initial, t.cfg[mode].perNode);
        if (r.granted) {
          return {
            granted: true,
            lease: { id: r.id, target: t.cfg.name, mode: toProtoMode(mode), holder: toProtoHolder(holder), acquiredAt: ts(r.nowMs), expiresAt: ts(r.expiresMs) },
            position: 0, limit: r.limit, leases: r.leases,
          };
        }
        const left = deadline - Date.now();
        if (left <= 0 || cancelled()) return { granted: false, lease: undefined, position: r.position, limit: r.limit, leases: r.leases };
        // Waiters far back in the queue cannot be next soon: they ask less often (up to 1 s),
        // so a long queue does not turn into thousands of Redis calls a second.
        const pause = POLL_MS * Math.min(10, 1 + Math.floor(r.position / Math.max(1, r.limit)));
        await adm.wakeup.sleep(t.cfg.name, mode, r.id, Math.min(pause, left));
      }
    },

    renewStorageLease: async (req) => {
      const t = adm.target(req.target);
      const parsed = parseStorageLeaseId(req.leaseId);
      if (!parsed) throw invalidArgument(`lease_id ${JSON.stringify(req.leaseId)} is not a storage lease id`);
      const ttl = ttlOf(req.ttlMs, t);
      const expiry = await adm.store.renew(t.cfg.name, parsed.mode, req.leaseId, ttl);
      if (expiry === undefined) throw notFound(`lease ${req.leaseId} on ${t.cfg.name} expired or was released`);
      return {
        lease: { id: req.leaseId, target: t.cfg.name, mode: toProtoMode(parsed.mode), holder: { jobId: parsed.jobId, attempt: parsed.attempt, rank: parsed.rank, node: '' }, acquiredAt: undefined, expiresAt: ts(expiry) },
      };
    },

    releaseStorageLease: async (req) => {
      if (req.leaseId) {
        const t = adm.target(req.target);
        const parsed = parseStorageLeaseId(req.leaseId);
        if (!parsed) throw invalidArgument(`lease_id ${JSON.stringify(req.leaseId)} is not a storage lease id`);
        const released = await adm.store.release(t.cfg.name, parsed.mode, req.leaseId);
        if (released) await adm.wake(t, parsed.mode);
        return { released: released ? 1 : 0 };
      }
      if (!req.jobId) throw invalidArgument('lease_id, or job_id (with attempt), is required');
      const targets = req.target ? [adm.target(req.target)] : [...adm.targets.values()];
      let released = 0;
      for (const t of targets) {
        for (const m of MODES) {
          const n = await adm.store.releaseAttempt(t.cfg.name, m, req.jobId, req.attempt);
          if (n > 0) await adm.wake(t, m);
          released += n;
        }
      }
      return { released };
    },
  };
}

export function storageService(calls: StorageCalls, log: Logger): StorageServiceServer {
  return {
    listStorageTargets: unary(log, 'ListStorageTargets', (req) => calls.listStorageTargets(req)),
    getStorageTarget: unary(log, 'GetStorageTarget', (req) => calls.getStorageTarget(req)),
    acquireStorageLease: unary(log, 'AcquireStorageLease', (req, call) => calls.acquireStorageLease(req, () => call.cancelled)),
    renewStorageLease: unary(log, 'RenewStorageLease', (req) => calls.renewStorageLease(req)),
    releaseStorageLease: unary(log, 'ReleaseStorageLease', (req) => calls.releaseStorageLease(req)),
  };
}

export function registerStorageMetrics(adm: StorageAdmission, registry: Registry): void {
  const labelNames = ['target', 'mode'] as const;
  const cache = new Map<string, { limit: number; leases: number; waiters: number }>();
  // The registry collects every metric at once: one Redis read per scrape, shared by the three.
  let inflight: Promise<void> | undefined;
  const refresh = () => (inflight ??= (async () => {
    try {
      for (const t of adm.targets.values()) {
        for (const m of MODES) {
          const s = await adm.store.state(t.cfg.name, m);
          cache.set(`${t.cfg.name}\u0000${m}`, { limit: s.limit ?? t.cfg[m].initial, leases: s.leases.length, waiters: s.waiters.length });
        }
      }
    } catch {
      // keep the last values
    } finally {
      setTimeout(() => (inflight = undefined), 200).unref();
    }
  })());
  const gauge = (name: string, help: string, pick: (v: { limit: number; leases: number; waiters: number }) => number) =>
    new Gauge({
      name, help, labelNames, registers: [registry],
      async collect() {
        await refresh();
        for (const [k, v] of cache) {
          const [target, mode] = k.split('\u0000') as [string, string];
          this.set({ target, mode }, pick(v));
        }
      },
    });
  gauge('gantry_storage_leases', 'Storage admission leases held, per target and mode.', (v) => v.leases);
  gauge('gantry_storage_waiters', 'Writers (or restart readers) waiting for a storage lease.', (v) => v.waiters);
  gauge('gantry_storage_pool_size', 'Current storage admission pool size (AIMD limit).', (v) => v.limit);
  // The action only (the reason's first word: increase, decrease, decay, hold): the full reason
  // carries figures and is shown by GetStorageTarget / `gantry storage show`.
  const steps = new Counter({
    name: 'gantry_storage_controller_steps_total', help: 'Storage admission controller steps, per target, mode and action (increase, decrease, decay, hold).',
    labelNames: ['target', 'mode', 'action'] as const, registers: [registry],
  });
  adm.onDecision = (target, mode, reason) => steps.inc({ target, mode, action: reason.split(':')[0] ?? reason });
  new Gauge({
    name: 'gantry_storage_degraded', help: 'The health detector flags the storage target (1) or not (0).', labelNames: ['target'], registers: [registry],
    collect() {
      for (const t of adm.targets.values()) this.set({ target: t.cfg.name }, t.degraded ? 1 : 0);
    },
  });
}

/**
 * Adds gantry.v1.StorageService to the checkpoint service's gRPC server and starts the
 * controller (stopped with the lifecycle); returns the service name for health and reflection.
 * The storage settings are read from the process environment (storage-config.ts).
 */
export function addStorageService(server: grpc.Server, ctx: Pick<ServiceContext<unknown>, 'log' | 'metrics' | 'lifecycle' | 'internalTls'>, redis: Redis, source: NodeJS.ProcessEnv = process.env): string {
  const config = loadStorageConfig(source);
  const view = config.schedulerAddr ? nodeServiceView(config.schedulerAddr, ctx.internalTls) : undefined;
  const adm = new StorageAdmission(redis, config, view, ctx.log);
  registerStorageMetrics(adm, ctx.metrics);
  const calls = storageCalls(adm);
  server.addService(...admitEvery(StorageServiceService, storageService(calls, ctx.log)));
  adm.start();
  ctx.lifecycle.onShutdown('storage-controller', () => adm.stop());
  if (config.httpPort !== undefined) {
    const http = serveStorageHttp(calls, config.httpHost, config.httpPort, ctx.log);
    ctx.lifecycle.onShutdown('storage-http', () => new Promise<void>((resolve) => http.close(() => resolve())));
  }
  ctx.log.info({ targets: config.targets.map((t) => t.name), scheduler: config.schedulerAddr ?? null, controlMs: config.controlIntervalMs }, 'storage admission ready');
  return STORAGE_SERVICE_NAME;
}

export { mountBelongs };

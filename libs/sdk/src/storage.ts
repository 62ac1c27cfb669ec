// StorageClient: storage admission (gantry.v1.StorageService, served by the checkpoint service
// on its address). A cooperative writer takes a write lease before it saves a checkpoint (a
// restarting rank a read lease before it loads one), keeps it renewed while it works, and
// gives it back; `withStorageLease` does all three around a function.
import {
  StorageLeaseMode,
  StorageServiceClient,
  type AcquireStorageLeaseResponse,
  type StorageLease,
  type StorageTarget,
} from '@gantry/proto';
import { GantryError, status } from './errors.js';
import { addDefaults, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Rpc, type CallOptions } from './rpc.js';

export type StorageLeaseKind = 'write' | 'read';

export interface StorageLeaseRequest {
  /** The target by name, or `path` (under its mount prefix) to let the service pick it. */
  target?: string;
  path?: string;
  mode: StorageLeaseKind;
  jobId: string;
  attempt: number;
  rank: number;
  node?: string;
  /** Lease TTL; the target's default when absent. A killed holder's lease returns after it. */
  ttlMs?: number;
}

export interface AcquireOptions extends CallOptions {
  /** Give up (throw DEADLINE_EXCEEDED) after this long waiting; default: wait until granted or aborted. */
  maxWaitMs?: number;
  /** Called while queued, with the place in the queue (0 is next). */
  onWait?: (position: number, res: AcquireStorageLeaseResponse) => void;
}

const MODE = { write: StorageLeaseMode.STORAGE_LEASE_MODE_WRITE, read: StorageLeaseMode.STORAGE_LEASE_MODE_READ } as const;
/** Each AcquireStorageLease call waits this long on the server (long polling). */
const WAIT_SLICE_MS = 5_000;

export class StorageClient {
  readonly options: ResolvedClientOptions;
  private readonly rpc: Rpc;
  private readonly client: StorageServiceClient;

  /** `address`: the checkpoint service's (not the gateway's). */
  constructor(options: ClientOptions = {}) {
    this.options = addDefaults(options);
    this.rpc = new Rpc(this.options);
    this.client = new StorageServiceClient(this.options.address, this.options.credentials, this.options.channelOptions);
  }

  close(): void {
    this.client.close();
  }

  async listTargets(options?: CallOptions): Promise<StorageTarget[]> {
    return (await this.rpc.unary(this.client.listStorageTargets.bind(this.client), {}, 'read', options)).targets;
  }

  async getTarget(name: string, options?: CallOptions): Promise<StorageTarget> {
    const res = await this.rpc.unary(this.client.getStorageTarget.bind(this.client), { name }, 'read', options);
    if (!res.target) throw new GantryError(status.INTERNAL, 'server response has no target');
    return res.target;
  }

  /**
   * Waits for a lease (FIFO behind whoever asked first). Retried on UNAVAILABLE: asking again
   * with the same holder keeps the place in the queue and is granted at most one lease.
   */
  async acquire(req: StorageLeaseRequest, { maxWaitMs, onWait, ...options }: AcquireOptions = {}): Promise<StorageLease> {
    const until = maxWaitMs === undefined ? Infinity : Date.now() + maxWaitMs;
    for (;;) {
      options.signal?.throwIfAborted();
      const waitMs = Math.max(0, Math.min(WAIT_SLICE_MS, until - Date.now()));
      const res = await this.rpc.unary(this.client.acquireStorageLease.bind(this.client), {
        target: req.target ?? '',
        path: req.path ?? '',
        mode: MODE[req.mode],
        holder: { jobId: req.jobId, attempt: req.attempt, rank: req.rank, node: req.node ?? '' },
        ttlMs: req.ttlMs ?? 0,
        waitMs,
      }, 'idempotent', { ...options, timeoutMs: (options.timeoutMs ?? this.options.timeoutMs) + waitMs });
      if (res.granted && res.lease) return res.lease;
      if (Date.now() >= until || options.signal?.aborted) {
        await this.leaveQueue(req);
        options.signal?.throwIfAborted();
        throw new GantryError(status.DEADLINE_EXCEEDED, `no storage lease within ${maxWaitMs} ms (place ${res.position} in the queue, ${res.leases}/${res.limit} held)`);
      }
      onWait?.(res.position, res);
    }
  }

  /** Gives up a place in the queue at once (the server would drop it 15 s after the last ask). */
  private async leaveQueue(req: StorageLeaseRequest): Promise<void> {
    if (!req.target) return; // picked by path: the answer did not say which target
    const id = `${req.mode === 'write' ? 'w' : 'r'}:${req.jobId}:${req.attempt}:${req.rank}`;
    await this.release({ target: req.target, id }, { timeoutMs: 2_000 }).catch(() => undefined);
  }

  /** Extends the lease; NOT_FOUND once it expired or was released (stop writing then). */
  async renew(lease: Pick<StorageLease, 'target' | 'id'>, ttlMs = 0, options?: CallOptions): Promise<StorageLease> {
    const res = await this.rpc.unary(this.client.renewStorageLease.bind(this.client), { target: lease.target, leaseId: lease.id, ttlMs }, 'idempotent', options);
    if (!res.lease) throw new GantryError(status.INTERNAL, 'server response has no lease');
    return res.lease;
  }

  /** Gives the lease (or a place in the queue) back; true when there was one. */
  async release(lease: Pick<StorageLease, 'target' | 'id'>, options?: CallOptions): Promise<boolean> {
    const res = await this.rpc.unary(this.client.releaseStorageLease.bind(this.client), { target: lease.target, leaseId: lease.id, jobId: '', attempt: 0 }, 'idempotent', options);
    return res.released > 0;
  }

  /** Releases every lease and queue place of one job attempt (on `target`, or on every target). */
  async releaseAttempt(jobId: string, attempt: number, target = '', options?: CallOptions): Promise<number> {
    const res = await this.rpc.unary(this.client.releaseStorageLease.bind(this.client), { target, leaseId: '', jobId, attempt }, 'idempotent', options);
    return res.released;
  }

  /**
   * Acquires, runs `fn` while renewing the lease every third of its TTL, and releases it
   * however `fn` ends. If a renewal finds the lease gone, `fn`'s signal is aborted.
   */
  async withStorageLease<T>(req: StorageLeaseRequest, fn: (lease: StorageLease, signal: AbortSignal) => Promise<T>, options: AcquireOptions = {}): Promise<T> {
    const lease = await this.acquire(req, options);
    const ttl = lease.expiresAt && lease.acquiredAt ? lease.expiresAt.getTime() - lease.acquiredAt.getTime() : req.ttlMs ?? 30_000;
    const lost = new AbortController();
    const timer = setInterval(() => {
      this.renew(lease, req.ttlMs ?? 0).catch((err: unknown) => {
        if (GantryError.is(err, status.NOT_FOUND)) lost.abort(err);
      });
    }, Math.max(100, Math.floor(ttl / 3)));
    try {
      return await fn(lease, lost.signal);
    } finally {
      clearInterval(timer);
      await this.release(lease).catch(() => undefined);
    }
  }
}

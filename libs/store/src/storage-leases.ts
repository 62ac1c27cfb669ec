// Storage admission leases: a bounded pool per storage target and mode (write: checkpoint
// saves, read: restart reads), held in Redis. Acquire, renew and release are each one Lua
// script (compare-and-set): a lease is granted only while fewer than `limit` are held, at most
// `perNode` to the holders on one node, and only to a waiter among the first free-slot-many
// that may go (FIFO across every job that asked; a waiter whose node holds its share is passed
// over and keeps its place). Leases expire when their holder stops renewing (a killed rank);
// a waiter that stops asking loses its place; a newer attempt of a job drops its older
// attempts' leases and places. The limit is set by the checkpoint service's controller.
//
// Time: by default the scripts use Redis's clock (TIME), one clock for every service replica;
// the benchmark passes its simulated clock instead (`clock`).
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { keys } from './keys.js';

export type StorageMode = 'write' | 'read';

export interface StorageHolder {
  jobId: string;
  attempt: number;
  rank: number;
  node?: string;
}

export interface HeldLease {
  id: string;
  holder: StorageHolder;
  acquiredMs: number;
  expiresMs: number;
}

export interface WaitingHolder {
  id: string;
  holder: StorageHolder;
  sinceMs: number;
  position: number;
}

export interface AcquireResult {
  granted: boolean;
  id: string;
  /** 0 is next; 0 when granted. */
  position: number;
  limit: number;
  /** Leases held after this call. */
  leases: number;
  /** Expiry (ms) when granted. */
  expiresMs: number;
  nowMs: number;
}

export interface PoolState {
  limit: number | undefined;
  leases: HeldLease[];
  waiters: WaitingHolder[];
  /** What the controller last wrote with the limit (`setLimit`), if anything. */
  controller: PoolController | undefined;
}

/**
 * The controller's state beside the limit, in the same hash and written with it, so a
 * restarted (or another) checkpoint service continues from it: counters such as steps to hold
 * or steps idle, the reason for the limit, and when it was decided.
 */
export interface PoolController {
  state: Record<string, number>;
  reason: string;
  atMs: number;
}

export const STORAGE_TARGET_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The stable lease id of a holder: "{w|r}:{job}:{attempt}:{rank}". */
export function storageLeaseId(mode: StorageMode, h: Pick<StorageHolder, 'jobId' | 'attempt' | 'rank'>): string {
  return `${mode === 'write' ? 'w' : 'r'}:${h.jobId}:${h.attempt}:${h.rank}`;
}

export function parseStorageLeaseId(id: string): { mode: StorageMode; jobId: string; attempt: number; rank: number } | undefined {
  const m = /^([wr]):(.+):(\d+):(\d+)$/.exec(id);
  return m ? { mode: m[1] === 'w' ? 'write' : 'read', jobId: m[2]!, attempt: Number(m[3]), rank: Number(m[4]) } : undefined;
}

const load = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
// Every script starts with the pool's shared functions (and so takes the same seven keys).
const POOL_LUA = load('storage-pool');
const withPool = (name: string) => `${POOL_LUA}\n${load(name)}`;
const LUA = { acquire: withPool('storage-acquire'), renew: withPool('storage-renew'), release: withPool('storage-release'), grantable: withPool('storage-grantable') };
const POOL_KEYS = 7;

type Cmd = (...args: (string | number)[]) => Promise<unknown>;
type WithStorage = Redis & { gantryStorageAcquire?: Cmd; gantryStorageRenew?: Cmd; gantryStorageRelease?: Cmd; gantryStorageGrantable?: Cmd };

interface StoredHolder extends StorageHolder {
  atMs: number;
}

function parseHolder(json: string | undefined, id: string): StoredHolder {
  if (json) {
    try {
      return JSON.parse(json) as StoredHolder;
    } catch {
      // fall through: the id alone names the holder
    }
  }
  const p = parseStorageLeaseId(id);
  return { jobId: p?.jobId ?? id, attempt: p?.attempt ?? 0, rank: p?.rank ?? 0, atMs: 0 };
}

/** A malformed value (written by hand, or by a version that stored something else) is ignored. */
function parseController(json: string | null): PoolController | undefined {
  if (!json) return undefined;
  try {
    const v = JSON.parse(json) as Partial<PoolController>;
    if (typeof v !== 'object' || v === null || typeof v.state !== 'object' || v.state === null) return undefined;
    const state: Record<string, number> = {};
    for (const [k, n] of Object.entries(v.state)) if (typeof n === 'number' && Number.isFinite(n)) state[k] = n;
    return { state, reason: typeof v.reason === 'string' ? v.reason : '', atMs: typeof v.atMs === 'number' ? v.atMs : 0 };
  } catch {
    return undefined;
  }
}

export interface StorageLeaseStoreOptions {
  /** Milliseconds since the epoch; undefined: Redis's own clock. */
  clock?: () => number;
  /** A waiter that has not asked for this long loses its place (default 15 s). */
  waiterTtlMs?: number;
}

export class StorageLeaseStore {
  private readonly r: WithStorage;
  private readonly clock: (() => number) | undefined;
  readonly waiterTtlMs: number;

  constructor(private readonly redis: Redis, opts: StorageLeaseStoreOptions = {}) {
    this.r = redis as WithStorage;
    this.clock = opts.clock;
    this.waiterTtlMs = opts.waiterTtlMs ?? 15_000;
    if (typeof this.r.gantryStorageGrantable !== 'function') {
      redis.defineCommand('gantryStorageAcquire', { lua: LUA.acquire, numberOfKeys: POOL_KEYS });
      redis.defineCommand('gantryStorageRenew', { lua: LUA.renew, numberOfKeys: POOL_KEYS });
      redis.defineCommand('gantryStorageRelease', { lua: LUA.release, numberOfKeys: POOL_KEYS });
      redis.defineCommand('gantryStorageGrantable', { lua: LUA.grantable, numberOfKeys: POOL_KEYS });
    }
  }

  private now(): number {
    return this.clock ? Math.round(this.clock()) : 0;
  }

  private k(target: string, mode: StorageMode) {
    const p = (part: string) => keys.storagePool(target, mode, part);
    return { leases: p('leases'), holders: p('holders'), waiters: p('waiters'), seen: p('waiters:seen'), info: p('waiters:info'), pool: p('pool'), nodes: p('nodes') };
  }

  /** The seven keys of storage-pool.lua, in its order. */
  private poolKeys(target: string, mode: StorageMode): string[] {
    const k = this.k(target, mode);
    return [k.leases, k.holders, k.waiters, k.seen, k.info, k.pool, k.nodes];
  }

  /**
   * Takes a lease, renews one already held, or joins (or keeps its place in) the waiter queue.
   * `defaultLimit` is the pool size used when the controller has not set one yet; `perNode`
   * the most leases of this pool the holders on one node may hold at once (0: no cap; a holder
   * without a node is not capped).
   */
  async acquire(target: string, mode: StorageMode, holder: StorageHolder, ttlMs: number, defaultLimit: number, perNode = 0): Promise<AcquireResult> {
    const id = storageLeaseId(mode, holder);
    const now = this.now();
    const stored: StoredHolder = { ...holder, atMs: now || Date.now() };
    const res = (await this.r.gantryStorageAcquire!(
      ...this.poolKeys(target, mode),
      id, JSON.stringify(stored), now, ttlMs, this.waiterTtlMs, holder.jobId, holder.attempt, defaultLimit, perNode, holder.node ?? '',
    )) as number[];
    const [granted, position, limit, leases, expiresMs, nowMs] = res.map(Number) as [number, number, number, number, number, number];
    return { granted: granted === 1, id, position, limit, leases, expiresMs, nowMs };
  }

  /** The new expiry (ms), or undefined when the lease is gone (expired or released). */
  async renew(target: string, mode: StorageMode, id: string, ttlMs: number): Promise<number | undefined> {
    const expiry = Number(await this.r.gantryStorageRenew!(...this.poolKeys(target, mode), id, this.now(), ttlMs));
    return expiry > 0 ? expiry : undefined;
  }

  /** Gives a lease (or a place in the queue) back; true when there was one. */
  async release(target: string, mode: StorageMode, id: string): Promise<boolean> {
    return Number(await this.r.gantryStorageRelease!(...this.poolKeys(target, mode), id)) === 1;
  }

  /**
   * The waiters an acquire would grant now, in queue order (at most the free slots; a waiter
   * whose node holds `perNode` leases is passed over): whom to wake after a release or a raised
   * limit. Drops expired leases and waiters that stopped asking on the way.
   */
  async grantable(target: string, mode: StorageMode, defaultLimit: number, perNode = 0): Promise<string[]> {
    return (await this.r.gantryStorageGrantable!(...this.poolKeys(target, mode), this.now(), this.waiterTtlMs, defaultLimit, perNode)) as string[];
  }

  /** Releases every lease and place of one job attempt in this pool; returns how many. */
  async releaseAttempt(target: string, mode: StorageMode, jobId: string, attempt: number): Promise<number> {
    const k = this.k(target, mode);
    const [held, waiting] = await Promise.all([this.redis.hkeys(k.holders), this.redis.zrange(k.waiters, 0, -1)]);
    let n = 0;
    for (const id of new Set([...held, ...waiting])) {
      const p = parseStorageLeaseId(id);
      if (p && p.jobId === jobId && p.attempt === attempt && (await this.release(target, mode, id))) n++;
    }
    return n;
  }

  /** Sets the pool's limit and, with `controller`, the controller's state beside it (one HSET). */
  async setLimit(target: string, mode: StorageMode, limit: number, controller?: PoolController): Promise<void> {
    const fields: Record<string, string | number> = { limit: Math.max(0, Math.floor(limit)) };
    if (controller) fields.controller = JSON.stringify(controller);
    await this.redis.hset(this.k(target, mode).pool, fields);
  }

  /** The pool as it stands: unexpired leases and live waiters in queue order. */
  async state(target: string, mode: StorageMode, nowMs?: number): Promise<PoolState> {
    const k = this.k(target, mode);
    const res = await this.redis.multi()
      .zrange(k.leases, 0, -1, 'WITHSCORES')
      .hgetall(k.holders)
      .zrange(k.waiters, 0, -1)
      .zrange(k.seen, 0, -1, 'WITHSCORES')
      .hgetall(k.info)
      .hmget(k.pool, 'limit', 'controller')
      .time()
      .exec();
    if (!res) throw new Error('storage pool read was aborted');
    for (const [err] of res) if (err) throw err;
    const [leasesRaw, holders, waitersRaw, seenRaw, info, [limit, controllerRaw], time] = res.map(([, v]) => v) as [
      string[], Record<string, string>, string[], string[], Record<string, string>, [string | null, string | null], [string, string],
    ];
    const now = nowMs ?? (this.clock ? this.clock() : Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000));
    const leases: HeldLease[] = [];
    for (let i = 0; i < leasesRaw.length; i += 2) {
      const id = leasesRaw[i]!;
      const expiresMs = Number(leasesRaw[i + 1]);
      if (expiresMs <= now) continue;
      const { atMs, ...holder } = parseHolder(holders[id], id);
      leases.push({ id, holder, acquiredMs: atMs, expiresMs });
    }
    const seen = new Map<string, number>();
    for (let i = 0; i < seenRaw.length; i += 2) seen.set(seenRaw[i]!, Number(seenRaw[i + 1]));
    const waiters: WaitingHolder[] = [];
    for (const id of waitersRaw) {
      if ((seen.get(id) ?? 0) <= now - this.waiterTtlMs) continue;
      const { atMs, ...holder } = parseHolder(info[id], id);
      waiters.push({ id, holder, sinceMs: atMs, position: waiters.length });
    }
    return { limit: limit === null ? undefined : Number(limit), leases, waiters, controller: parseController(controllerRaw) };
  }
}

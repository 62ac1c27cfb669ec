// Connections to the two pieces of shared infrastructure. Both retry forever in the
// background: a control plane that outlives a NATS or Redis restart (or failover) is the point.
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type Authenticator, type NatsConnection } from '@nats-io/transport-node';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.js';
import { natsServers, type RedisTarget } from './config.js';

/**
 * Connects to any server of `url` (one server, or a cluster's servers comma-separated) and
 * reconnects across them forever, servers in random order so a fleet of agents spreads out.
 * The client also learns the cluster's other members from the server it reaches.
 */
export async function connectNats(url: string, name: string, log: Logger, credsFile?: string, opts: { inboxPrefix?: string } = {}): Promise<NatsConnection> {
  const nc = await connect({
    ...(credsFile ? { authenticator: natsAuthenticator(credsFile) } : {}),
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    servers: natsServers(url),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    waitOnFirstConnect: true,
    // The client otherwise makes an Error per request only to keep the caller's stack for a
    // timeout that rarely comes: 5-10 % of the scheduler's pass when it sends thousands of
    // signed commands (issue 14). Our logs name the subject and operation instead.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        log.warn({ nats: s.type, server: 'server' in s ? s.server : undefined }, `nats ${s.type}`);
      }
    }
  })();
  return nc;
}

/**
 * The authenticator for a credentials file: an NKEY user seed (`SU…`, one line; the bus
 * authorisation's users) or a decentralised `.creds` file (user JWT and seed).
 */
export function natsAuthenticator(file: string): Authenticator {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read NATS credentials ${file}: ${(err as Error).message}`);
  }
  const seed = text.trim();
  if (/^SU[A-Z2-7]+$/.test(seed)) return nkeyAuthenticator(new TextEncoder().encode(seed));
  if (text.includes('-----BEGIN NATS USER JWT-----')) return credsAuthenticator(new TextEncoder().encode(text));
  throw new Error(`NATS credentials ${file} hold neither an NKEY user seed (SU…) nor a .creds file`);
}

/**
 * Where libs/store finds how many replicas a commit that matters waits for (Redis WAIT). A
 * global symbol, so the store needs no dependency on this kit.
 */
export const REPLICA_WAIT = Symbol.for('gantry.redis.replicaWait');

export interface ReplicaWait {
  replicas: number;
  timeoutMs: number;
}

/** Sets (or clears, with replicas 0) the replica wait of a connection made elsewhere (tests, tools). */
export function setReplicaWait(redis: Redis, wait: ReplicaWait): void {
  (redis as unknown as Record<symbol, ReplicaWait | undefined>)[REPLICA_WAIT] = wait.replicas > 0 ? wait : undefined;
}

/** ioredis options for a target: by URL, or through Sentinel (password and db still from the URL). */
export function redisOptions(target: RedisTarget): { url?: string; options: RedisOptions } {
  const common: RedisOptions = {
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * times, 1000),
    // A connection that still points at a demoted primary gets READONLY on its next write:
    // reconnect (through the sentinels, to the new primary) and resend the command there.
    reconnectOnError: (err) => (/^READONLY|^LOADING|^MASTERDOWN/.test(err.message) ? 2 : false),
  };
  if (!target.sentinels) return { url: target.url, options: common };
  const u = new URL(target.url);
  const db = Number(u.pathname.replace(/^\//, '') || '0');
  return {
    options: {
      ...common,
      sentinels: target.sentinels,
      name: target.masterName!,
      role: 'master',
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(Number.isInteger(db) && db > 0 ? { db } : {}),
      ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
      // Subscribe to +switch-master on the sentinels: drop the connection to the old primary
      // at once on a failover instead of waiting for it to fail.
      failoverDetector: true,
      sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
    },
  };
}

/** A Redis connection by URL (a string, or a target without sentinels) or through Sentinel. */
export function connectRedis(target: string | RedisTarget, log: Logger): Redis {
  const t: RedisTarget = typeof target === 'string' ? { url: target, waitReplicas: 0, waitTimeoutMs: 0 } : target;
  const { url, options } = redisOptions(t);
  const redis = url ? new Redis(url, options) : new Redis(options);
  setReplicaWait(redis, { replicas: t.waitReplicas, timeoutMs: t.waitTimeoutMs });
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error'));
  if (t.sentinels) reconnectAfterFailoverRace(redis, log);
  let connects = 0;
  redis.on('ready', () => {
    const stream = (redis as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
    if (connects++ > 0) log.warn({ primary: `${stream?.remoteAddress}:${stream?.remotePort}` }, 'redis reconnected');
  });
  return redis;
}

/**
 * ioredis ends a Sentinel connection for good when the sentinels announce +switch-master while
 * it is still resolving the new primary after the old one died: the failover detector
 * disconnects the connector mid-connect, the connect fails with "Connection is closed." and the
 * client's status becomes "end" (seen in CI after kill -9 of the primary). A service must not
 * lose Redis for good on a failover, so a connection that ends without quit() or disconnect()
 * having been called connects again.
 */
function reconnectAfterFailoverRace(redis: Redis, log: Logger): void {
  let closing = false;
  const quit = redis.quit.bind(redis);
  const disconnect = redis.disconnect.bind(redis);
  redis.quit = ((...args: Parameters<Redis['quit']>) => { closing = true; return quit(...args); }) as Redis['quit'];
  redis.disconnect = (reconnect?: boolean) => { if (!reconnect) closing = true; disconnect(reconnect); };
  let ends = 0;
  redis.on('ready', () => { ends = 0; });
  redis.on('end', () => {
    if (closing) return;
    // At once the first time (commands sent while it is "end" fail); backing off if it repeats.
    const delayMs = Math.min(100 * ends++, 1_000);
    log.warn({ delayMs }, 'redis connection ended during a failover; connecting again through the sentinels');
    setTimeout(() => {
      if (!closing) redis.connect().catch((err: Error) => log.warn({ err: err.message }, 'redis reconnect failed'));
    }, delayMs).unref();
  });
}

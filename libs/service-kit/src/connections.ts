// Connections to the two pieces of shared infrastructure. Both retry forever in the
// background: a control plane that outlives a NATS or Redis restart is the point.
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import type { Logger } from './logger.js';

export async function connectNats(url: string, name: string, log: Logger, credsFile?: string): Promise<NatsConnection> {
  const nc = await connect({
    ...(credsFile ? { authenticator: credsAuthenticator(readFileSync(credsFile)) } : {}),
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        log.warn({ nats: s.type }, `nats ${s.type}`);
      }
    }
  })();
  return nc;
}

export function connectRedis(url: string, log: Logger): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * times, 1000),
  });
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error'));
  return redis;
}

// A real redis-server for the store's tests (the Lua scripts are the behaviour under test):
// started before a file's tests, stopped after them.
import { afterAll, beforeAll } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type Server } from '../../../test/harness/infra.js';

/** Registers the hooks; the returned getter gives the connection once the tests run (`.url()` the server's URL, for more clients). */
export function useRedis(): (() => Redis) & { url(): string } {
  let server: Server | undefined;
  let redis: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  }, 60_000);
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });
  const get = () => {
    if (!redis) throw new Error('redis is not started yet (use it inside a test)');
    return redis;
  };
  return Object.assign(get, { url: () => server!.url });
}

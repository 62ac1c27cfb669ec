import { describe, expect, it } from 'vitest';
import { commonEnv, ConfigError, loadConfig, natsServers, natsServersProblem, redisTarget } from '../src/config.js';
import { redisOptions } from '../src/connections.js';

describe('NATS_URL', () => {
  it('takes one server or a cluster, comma-separated, with or without a scheme', () => {
    expect(natsServersProblem('nats://127.0.0.1:4222')).toBeUndefined();
    expect(natsServersProblem('nats://n1:4222, nats://n2:4222,tls://n3:4222')).toBeUndefined();
    expect(natsServersProblem('n1:4222,n2:4222')).toBeUndefined();
    expect(natsServers('nats://n1:4222, nats://n2:4222')).toEqual(['nats://n1:4222', 'nats://n2:4222']);
  });

  it('refuses empty items, other schemes, paths and duplicates, naming the variable', () => {
    expect(natsServersProblem('nats://n1:4222,')).toMatch(/empty/);
    expect(natsServersProblem('http://n1:4222')).toMatch(/scheme/);
    expect(natsServersProblem('nats://n1:4222/x')).toMatch(/path/);
    expect(natsServersProblem('nats://n1:4222,nats://n1:4222')).toMatch(/twice/);
    expect(() => loadConfig(commonEnv, { NATS_URL: 'nats://a:1,,nats://b:2' })).toThrow(/NATS_URL: .*empty.*\(got "nats:\/\/a:1,,nats:\/\/b:2"\)/);
  });

  it('stream replicas default to 1 and stay within 1..5', () => {
    expect(loadConfig(commonEnv, {}).NATS_STREAM_REPLICAS).toBe(1);
    expect(loadConfig(commonEnv, { NATS_STREAM_REPLICAS: '3' }).NATS_STREAM_REPLICAS).toBe(3);
    expect(() => loadConfig(commonEnv, { NATS_STREAM_REPLICAS: '0' })).toThrow(/NATS_STREAM_REPLICAS/);
  });
});

describe('Redis through Sentinel', () => {
  it('connects by URL without sentinels, and waits for no replica unless told', () => {
    const t = redisTarget(loadConfig(commonEnv, { REDIS_URL: 'redis://r:6379' }));
    expect(t).toMatchObject({ url: 'redis://r:6379', waitReplicas: 0 });
    expect(t.sentinels).toBeUndefined();
    expect(redisOptions(t).url).toBe('redis://r:6379');
  });

  it('asks the sentinels for the primary, keeps password and db from the URL, and waits for one replica', () => {
    const t = redisTarget(loadConfig(commonEnv, {
      REDIS_URL: 'redis://:s%40cret@ignored:6379/2', REDIS_SENTINELS: 's1:26379, s2:26379,[::1]:26380', REDIS_SENTINEL_MASTER: 'gantry',
    }));
    expect(t.sentinels).toEqual([{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }, { host: '::1', port: 26380 }]);
    expect(t.waitReplicas).toBe(1);
    const { url, options } = redisOptions(t);
    expect(url).toBeUndefined();
    expect(options).toMatchObject({ name: 'gantry', role: 'master', password: 's@cret', db: 2, failoverDetector: true });
  });

  it('refuses half a Sentinel configuration and bad addresses', () => {
    expect(() => redisTarget(loadConfig(commonEnv, { REDIS_SENTINELS: 's1:26379' }))).toThrow(ConfigError);
    expect(() => redisTarget(loadConfig(commonEnv, { REDIS_SENTINEL_MASTER: 'gantry' }))).toThrow(/REDIS_SENTINELS: required/);
    expect(() => loadConfig(commonEnv, { REDIS_SENTINELS: 's1', REDIS_SENTINEL_MASTER: 'g' })).toThrow(/REDIS_SENTINELS: "s1" is not host:port/);
    expect(() => redisTarget(loadConfig(commonEnv, { REDIS_URL: 'rediss://r:6380', REDIS_SENTINELS: 's:1', REDIS_SENTINEL_MASTER: 'g' }))).toThrow(/TLS .* not supported/);
  });

  it('REDIS_WAIT_REPLICAS overrides the default', () => {
    expect(redisTarget(loadConfig(commonEnv, { REDIS_SENTINELS: 's:1', REDIS_SENTINEL_MASTER: 'g', REDIS_WAIT_REPLICAS: '0' })).waitReplicas).toBe(0);
    expect(redisTarget(loadConfig(commonEnv, { REDIS_WAIT_REPLICAS: '2', REDIS_WAIT_TIMEOUT_MS: '500' }))).toMatchObject({ waitReplicas: 2, waitTimeoutMs: 500 });
  });
});

describe('errors of a Redis failover', () => {
  it('are UNAVAILABLE (clients retry), other errors stay INTERNAL', async () => {
    const { toServiceError } = await import('../src/grpc-errors.js');
    const replication = Object.assign(new Error('write not confirmed by 1 Redis replica(s)'), { name: 'ReplicationError' });
    for (const err of [replication, new Error('READONLY You can\'t write against a read only replica.'), new Error('Connection is closed.'), Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }), Object.assign(new Error('timeout'), { name: 'TimeoutError' })]) {
      expect(toServiceError(err)).toMatchObject({ code: 14, details: expect.stringMatching(/failing over/) });
    }
    expect(toServiceError(new Error('boom'))).toMatchObject({ code: 13, details: 'internal error' });
  });
});

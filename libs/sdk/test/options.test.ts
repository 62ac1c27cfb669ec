import { describe, expect, it } from 'vitest';
import { ChannelCredentials } from '@grpc/grpc-js';
import { addDefaults, DEFAULT_ADDRESS, DEFAULT_RETRY_POLICY, channelCredentials } from '../src/index.js';

describe('addDefaults', () => {
  it('uses built-in defaults when nothing is set', () => {
    const o = addDefaults({ env: {} });
    expect(o.address).toBe(DEFAULT_ADDRESS);
    expect(o.timeoutMs).toBe(10_000);
    expect(o.retry).toEqual(DEFAULT_RETRY_POLICY);
    expect(o.metadata).toEqual({});
    expect(o.credentials._isSecure()).toBe(false);
  });

  it('reads the address and token from the environment, options winning', () => {
    const env = { GANTRY_ADDR: 'gw:1', GANTRY_TOKEN: 't0k' };
    expect(addDefaults({ env })).toMatchObject({ address: 'gw:1', metadata: { authorization: 'Bearer t0k' } });
    expect(addDefaults({ env, address: 'other:2', token: 'x' })).toMatchObject({ address: 'other:2', metadata: { authorization: 'Bearer x' } });
  });

  it('merges a partial retry policy and disables retries with false', () => {
    expect(addDefaults({ env: {}, retry: { maxAttempts: 2 } }).retry).toEqual({ ...DEFAULT_RETRY_POLICY, maxAttempts: 2 });
    expect(addDefaults({ env: {}, retry: false }).retry.maxAttempts).toBe(1);
  });

  it('keeps caller metadata', () => {
    expect(addDefaults({ env: {}, metadata: { 'x-tenant': 'ml' } }).metadata).toEqual({ 'x-tenant': 'ml' });
  });
});

describe('channelCredentials', () => {
  it('is insecure without tls and secure with it', () => {
    expect(channelCredentials(undefined)._isSecure()).toBe(false);
    expect(channelCredentials(true)._isSecure()).toBe(true);
    expect(channelCredentials({})).toBeInstanceOf(ChannelCredentials);
    expect(channelCredentials({})._isSecure()).toBe(true);
  });
});

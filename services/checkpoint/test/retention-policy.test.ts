// Retention per tenant: the variable's parsing (errors name the variable, the tenant and the
// field) and which policy applies to a job.
import { describe, expect, it } from 'vitest';
import { CheckpointRetention } from '@gantry/proto';
import { ConfigError } from '@gantry/service-kit';
import { loadCheckpointConfig } from '../src/config.js';
import { effectivePolicy, parseRetentionPolicies } from '../src/retention-policy.js';

const base = { REDIS_URL: 'redis://127.0.0.1:6379', NATS_URL: 'nats://127.0.0.1:4222' };

describe('CHECKPOINT_RETENTION_POLICIES', () => {
  it('parses tenants and "*", with CheckpointRetention defaults', () => {
    const p = parseRetentionPolicies('{"ml": {"keepLast": 3, "keepEvery": 1000, "delete": true}, "*": {"keepLast": 5}}');
    expect(p.get('ml')).toEqual(CheckpointRetention.create({ keepLast: 3, keepEvery: 1000, gcGraceSeconds: 0, delete: true }));
    expect(p.get('*')).toEqual(CheckpointRetention.create({ keepLast: 5 }));
    expect(loadCheckpointConfig({ ...base }).CHECKPOINT_RETENTION_POLICIES.size).toBe(0);
  });

  it('a bad value stops the service with the variable, the tenant and the field', () => {
    const bad = (v: string) => () => loadCheckpointConfig({ ...base, CHECKPOINT_RETENTION_POLICIES: v });
    expect(bad('{"ml": {"keepLast": -1}}')).toThrow(ConfigError);
    expect(bad('{"ml": {"keepLast": -1}}')).toThrow(/CHECKPOINT_RETENTION_POLICIES.*tenant "ml", keepLast/);
    expect(bad('{"ml": {"keep": 1}}')).toThrow(/CHECKPOINT_RETENTION_POLICIES.*tenant "ml".*keep/);
    expect(bad('[1]')).toThrow(/CHECKPOINT_RETENTION_POLICIES.*JSON object/);
    expect(bad('{"bad name": {}}')).toThrow(/CHECKPOINT_RETENTION_POLICIES.*not a tenant name/);
    expect(bad('{')).toThrow(/CHECKPOINT_RETENTION_POLICIES.*not JSON/);
  });

  it("a job's own policy wins over its tenant's, which wins over \"*\"", () => {
    const p = parseRetentionPolicies('{"ml": {"keepLast": 3}, "*": {"keepLast": 5}}');
    const own = CheckpointRetention.create({ keepLast: 1 });
    expect(effectivePolicy(own, 'ml', p)).toEqual({ policy: own, source: 'job' });
    expect(effectivePolicy(undefined, 'ml', p)).toMatchObject({ policy: { keepLast: 3 }, source: 'tenant ml' });
    expect(effectivePolicy(undefined, 'other', p)).toMatchObject({ policy: { keepLast: 5 }, source: 'default (*)' });
    expect(effectivePolicy(undefined, '', new Map())).toEqual({ policy: undefined, source: 'none' });
  });
});

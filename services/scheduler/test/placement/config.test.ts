import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, parseSchedulingConfig, PRIORITY_CLASSES, SchedulingConfigError } from '../../src/placement/index.js';

describe('parseSchedulingConfig', () => {
  it('applies defaults to a minimal document', () => {
    const c = parseSchedulingConfig({ tenants: { ml: { nominalGpus: 512, cohort: 'shared' } } });
    expect(c.tenants.ml).toEqual({ weight: 1, nominalGpus: 512, cohort: 'shared' });
    expect(c.preemption).toEqual(DEFAULT_CONFIG.preemption);
    expect(c.backfill.enabled).toBe(true);
  });

  it('accepts priority class names where a priority is expected', () => {
    const c = parseSchedulingConfig({ preemption: { crossTenantMinPriority: 'high', windowSec: 60 } });
    expect(c.preemption.crossTenantMinPriority).toBe(PRIORITY_CLASSES.high);
    expect(c.preemption.windowSec).toBe(60);
    expect(c.preemption.enabled).toBe(true);
  });

  it('reports every problem with its path', () => {
    let error: unknown;
    try {
      parseSchedulingConfig({
        tenants: { 'ml-research': { nominalGpus: -5, weight: 0 }, infer: { cohort: 'shared' }, x: 'y' },
        preemption: { reclaimWithinCohort: 'sometimes', crossTenantMinPriority: 'urgent' },
        backfil: {},
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SchedulingConfigError);
    expect((error as SchedulingConfigError).issues).toEqual([
      'backfil: unknown field (expected one of tenants, defaultTenant, fairShare, preemption, backfill, recovery, spares)',
      'tenants.ml-research.weight: expected a number > 0, got 0',
      'tenants.ml-research.nominalGpus: expected an integer >= 0, got -5',
      'tenants.x: expected an object, got "y"',
      'preemption.reclaimWithinCohort: expected one of any, lower-priority, never, got "sometimes"',
      'preemption.crossTenantMinPriority: expected a priority class (critical, high, normal, low, preemptible) or a number, got "urgent"',
      'tenants.infer: a tenant in cohort "shared" needs nominalGpus',
    ]);
  });

  it('rejects a non-object document', () => {
    expect(() => parseSchedulingConfig([])).toThrow('(root): expected an object, got an array');
  });
});

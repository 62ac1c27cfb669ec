import { describe, expect, it } from 'vitest';
import { DEFAULT_HEALTH_CONFIG, HealthConfigError, parseHealthConfig, resolveHealthConfig } from '../../src/health/config.js';

function issues(doc: unknown): string[] {
  try {
    parseHealthConfig(doc);
  } catch (err) {
    if (err instanceof HealthConfigError) return err.issues;
    throw err;
  }
  return [];
}

describe('health config', () => {
  it('an empty document is the defaults, and the defaults are valid', () => {
    expect(parseHealthConfig({})).toEqual(DEFAULT_HEALTH_CONFIG);
    expect(parseHealthConfig(undefined)).toEqual(DEFAULT_HEALTH_CONFIG);
  });

  it('reports every problem with its path in one pass', () => {
    const found = issues({
      windowSec: 0,
      states: { suspect: { enter: 'high', exitWindows: 1.5 }, quarantine: { autoRelease: 'yes' } },
      signals: { 'gpu.temperature': { weight: -1, direction: 'up' }, 'gpu.nope': {} },
      xid: { policy: { 79: 'explode', abc: 'warn', 95: { action: 'reset-gpu', repeat: { count: 1 } } } },
      shared: { minFraction: 2 },
      bogus: true,
    });
    expect(found).toEqual(expect.arrayContaining([
      'windowSec: expected a number > 0, got 0',
      'states.suspect.enter: expected a number >= 0, got "high"',
      'states.suspect.exitWindows: expected an integer >= 1, got 1.5',
      'states.quarantine.autoRelease: expected true or false, got "yes"',
      'signals.gpu.temperature.weight: expected a number >= 0, got -1',
      'signals.gpu.temperature.direction: expected one of high, low, both, got "up"',
      expect.stringMatching(/^signals\.gpu\.nope: unknown field/),
      expect.stringMatching(/^xid\.policy\.79: expected one of ignore, warn, restart-app/),
      'xid.policy.abc: expected an XID number as the key',
      'xid.policy.95.repeat.count: expected an integer >= 2, got 1',
      'xid.policy.95.repeat.withinSec: required',
      'xid.policy.95.repeat.action: required',
      'shared.minFraction: expected a number > 0 and <= 1, got 2',
      expect.stringMatching(/^bogus: unknown field/),
    ]));
    expect(found.length).toBe(14);
  });

  it('checks relations between fields', () => {
    expect(issues({ states: { suspect: { enter: 4, exit: 5 } } })).toEqual(['states.suspect.exit: must not exceed states.suspect.enter (4), got 5']);
    expect(issues({ states: { quarantine: { enter: 3 } } })).toEqual(['states.quarantine.enter: must be at least states.suspect.enter (4), got 3']);
    expect(issues({ states: { quarantine: { exit: 6 } } })).toEqual(['states.quarantine.exit: must not exceed states.suspect.enter (4), got 6']);
    expect(issues({ deviation: { deadZ: 5, capZ: 4 } })).toEqual(['deviation.capZ: must exceed deviation.deadZ (5), got 4']);
    expect(issues({ baseline: { buckets: 4, minBuckets: 6 } })).toEqual(['baseline.minBuckets: must not exceed baseline.buckets (4), got 6']);
  });

  it('overrides merge over the defaults; XID entries replace one XID at a time', () => {
    const c = parseHealthConfig({
      states: { suspect: { enter: 5 } },
      signals: { 'gpu.temperature': { weight: 2 } },
      xid: { policy: { 94: 'quarantine-now', 31: { action: 'restart-app', repeat: { count: 2, withinSec: 3600, action: 'drain-after-job' } } } },
    });
    expect(c.states.suspect).toEqual({ ...DEFAULT_HEALTH_CONFIG.states.suspect, enter: 5 });
    expect(c.signals['gpu.temperature']).toEqual({ ...DEFAULT_HEALTH_CONFIG.signals['gpu.temperature'], weight: 2 });
    expect(c.xid.policy[94]).toEqual({ action: 'quarantine-now' });
    expect(c.xid.policy[31]!.repeat).toEqual({ count: 2, withinSec: 3600, action: 'drain-after-job' });
    expect(c.xid.policy[79]).toEqual(DEFAULT_HEALTH_CONFIG.xid.policy[79]);
  });

  it('is plain JSON: stored beside the scheduling config and read back unchanged', () => {
    const c = resolveHealthConfig({ windowSec: 30 });
    expect(parseHealthConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
  });
});

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_XID_POLICY, decideXid, type XidAction } from '../../src/health/xid-actions.js';

const none = { remapFailure: false, earlierOnGpu: 0 };
const action = (xid: number, ctx = none, fatal?: boolean): XidAction =>
  decideXid({ xid, ...(fatal !== undefined ? { fatal } : {}) }, DEFAULT_XID_POLICY, 'warn', ctx).action;

describe('XID policy as data', () => {
  it("follows operators' practice from the 504-GPU report", () => {
    for (const x of [31, 43, 94]) expect(action(x), `xid ${x}`).toBe('restart-app');
    expect(action(119)).toBe('reset-gpu');
    expect(action(145, none, true)).toBe('reset-gpu');
    expect(action(149, none, true)).toBe('reset-gpu');
    expect(action(79)).toBe('reboot');
    for (const x of [48, 64, 74, 95, 140]) expect(action(x), `xid ${x}`).toBe('quarantine-now');
  });

  it('63 alone is wear; 63 with a remapping failure quarantines', () => {
    expect(action(63)).toBe('ignore');
    expect(action(63, { remapFailure: true, earlierOnGpu: 0 })).toBe('quarantine-now');
  });

  it('a Nonfatal NVLink5 error only warns', () => {
    expect(action(145, none, false)).toBe('warn');
    expect(action(144, none, false)).toBe('warn');
    expect(action(144, none, true)).toBe('quarantine-now');
  });

  it('application XIDs repeating on one GPU escalate to draining it', () => {
    expect(action(31, { remapFailure: false, earlierOnGpu: 1 })).toBe('restart-app');
    expect(action(31, { remapFailure: false, earlierOnGpu: 2 })).toBe('drain-after-job');
    expect(action(119, { remapFailure: false, earlierOnGpu: 1 })).toBe('quarantine-now');
  });

  it('unknown XIDs take the configured action', () => {
    expect(decideXid({ xid: 999 }, DEFAULT_XID_POLICY, 'drain-after-job', none).action).toBe('drain-after-job');
  });

  it('covers every XID in the catalogue, consistently with its immediate action', () => {
    const csv = readFileSync(fileURLToPath(new URL('../../../node-agent/src/collectors/xid/xid-catalog.csv', import.meta.url)), 'utf8');
    const rows = csv.trim().split('\n').slice(1).map((l) => l.split(','));
    // Operators' overrides of the catalogue (the 504-GPU report), and documented refinements.
    const overrides: Record<number, XidAction> = {
      43: 'restart-app', 63: 'ignore', 64: 'quarantine-now', 95: 'quarantine-now', 140: 'quarantine-now', 156: 'drain-after-job',
      8: 'restart-app', 13: 'restart-app', 31: 'restart-app', 94: 'restart-app',
    };
    const expected: Record<string, XidAction> = { RESTART_APP: 'restart-app', RESET_GPU: 'reset-gpu', RESTART_BM: 'reboot' };
    expect(rows.length).toBeGreaterThan(40);
    for (const [xidText, , , , immediate] of rows) {
      const xid = Number(xidText);
      const entry = DEFAULT_XID_POLICY[xid];
      expect(entry, `XID ${xid} missing from the policy`).toBeDefined();
      const want = overrides[xid] ?? expected[immediate!];
      if (want) expect(entry!.action, `XID ${xid} (${immediate})`).toBe(want);
    }
  });
});

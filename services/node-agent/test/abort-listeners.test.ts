// The agent's kernel-log follower waits on one AbortSignal for its whole life. Each wait must
// take its abort listener off again: one left behind per wait made Node warn
// "MaxListenersExceededWarning: 11 abort listeners added to [AbortSignal]" in agent logs.
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { xidRecords, type XidRecord } from '../src/collectors/telemetry-collector.js';
import { SimulatedBackend } from '../src/device/sim/sim-backend.js';

describe('kernel log follower on a long-lived AbortSignal', () => {
  it('keeps at most one abort listener however many times it waits', async () => {
    const backend = new SimulatedBackend({ seed: 7 });
    const abort = new AbortController();
    const records = xidRecords(backend, { signal: abort.signal })[Symbol.asyncIterator]();
    const warnings: string[] = [];
    const onWarning = (w: Error) => { warnings.push(`${w.name}: ${w.message}`); };
    process.on('warning', onWarning);
    try {
      const counts: number[] = [];
      for (let i = 0; i < 50; i++) {
        // The follower has drained the log and waits; a new XID ends the wait.
        const next = records.next();
        await new Promise((r) => setImmediate(r));
        counts.push(getEventListeners(abort.signal, 'abort').length);
        backend.inject({ fault: 'xid', gpu: i % 8, params: { xid: 13 } });
        const got = await next;
        expect(got.done).toBe(false);
        expect((got.value as XidRecord).events.map((e) => e.xid)).toEqual([13]);
      }
      // One wait in progress at a time: one listener, never a growing count.
      expect(Math.max(...counts)).toBe(1);
      expect(getEventListeners(abort.signal, 'abort').length).toBeLessThanOrEqual(1);
      const last = records.next();
      abort.abort();
      expect((await last).done).toBe(true);
      expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

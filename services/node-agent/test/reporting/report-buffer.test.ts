import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReportBuffer } from '../../src/reporting/report-buffer.js';

const dir = () => mkdtempSync(join(tmpdir(), 'gantry-reports-'));
const payload = (n: number) => new Uint8Array(n).fill(7);

describe('report buffer', () => {
  it('keeps reports in order across a restart of the agent', () => {
    const d = dir();
    const a = new ReportBuffer(d, { maxBytes: 1 << 20 });
    a.append('telemetry', 's.t', 't1', payload(10));
    a.append('event', 's.e', 'x1', payload(5));
    const b = new ReportBuffer(d, { maxBytes: 1 << 20 });
    b.append('telemetry', 's.t', 't2', payload(10));
    expect(b.peek(10).map((r) => [r.kind, r.msgId, r.subject, r.data.length])).toEqual([
      ['telemetry', 't1', 's.t', 10], ['event', 'x1', 's.e', 5], ['telemetry', 't2', 's.t', 10],
    ]);
    b.ack(b.peek(1)[0]!.file);
    expect(b.peek(10).map((r) => r.msgId)).toEqual(['x1', 't2']);
  });

  it('when full, drops the oldest telemetry (counted) and never an event', () => {
    const b = new ReportBuffer(dir(), { maxBytes: 400 });
    b.append('event', 's.e', 'x1', payload(50));
    for (let i = 0; i < 10; i++) b.append('telemetry', 's.t', `t${i}`, payload(50));
    b.append('event', 's.e', 'x2', payload(50));
    const ids = b.peek(100).map((r) => r.msgId);
    expect(ids[0]).toBe('x1');
    expect(ids.at(-1)).toBe('x2');
    expect(b.sizeBytes).toBeLessThanOrEqual(400);
    expect(b.dropped).toBeGreaterThan(0);
    // The telemetry that survives is the newest, still in order.
    const kept = ids.filter((id) => id.startsWith('t'));
    expect(kept).toEqual(Array.from({ length: 10 }, (_, i) => `t${i}`).slice(10 - kept.length));
    expect(ids.length + b.dropped).toBe(12);
  });

  it('skips a torn file instead of failing', () => {
    const d = dir();
    const b = new ReportBuffer(d, { maxBytes: 1 << 20 });
    b.append('event', 's.e', 'x1', payload(3));
    writeFileSync(join(d, '0000000000000000-event.rpt'), 'not a header');
    expect(b.peek(10).map((r) => r.msgId)).toEqual(['x1']);
  });
});

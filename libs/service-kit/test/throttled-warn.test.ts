import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { throttledWarn } from '../src/logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } }));
  return { log, lines };
}

afterEach(() => vi.useRealTimers());

describe('throttledWarn', () => {
  it('logs a key at most once an interval, then says how many it did not log; keys are independent', () => {
    vi.useFakeTimers({ now: 0 });
    const { log, lines } = capture();
    const warn = throttledWarn(log, 'dropped', 1_000);
    for (let i = 0; i < 5; i++) warn('a', { i });
    warn('b', { i: 0 });
    vi.setSystemTime(1_000);
    warn('a', { i: 5 });
    expect(lines.map((l) => [l['msg'], l['i'], l['notLogged']])).toEqual([['dropped', 0, undefined], ['dropped', 0, undefined], ['dropped', 5, 4]]);
  });
});

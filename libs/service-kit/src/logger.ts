import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level: string): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } });
}

/**
 * A warning logged at most once a second per key, carrying how many were not logged since
 * (`notLogged`): a flood of bad messages must not flood the log as well. Keys must come from a
 * small fixed set (kinds, reasons), never from input.
 */
export function throttledWarn(log: Logger, msg: string, intervalMs = 1_000): (key: string, fields: Record<string, unknown>) => void {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key, fields) => {
    const now = Date.now();
    const prev = last.get(key);
    if (prev && now - prev.at < intervalMs) {
      prev.suppressed++;
      return;
    }
    last.set(key, { at: now, suppressed: 0 });
    log.warn({ ...fields, ...(prev?.suppressed ? { notLogged: prev.suppressed } : {}) }, msg);
  };
}

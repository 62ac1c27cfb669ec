// Rendezvous ports. Best fit packs small jobs onto the same host, so a fixed MASTER_PORT
// would have two jobs' node rank 0 bind the same port. Each attempt whose spec names no port
// gets one from RENDEZVOUS_PORT_RANGE, claimed on node rank 0's host in Redis in the same
// compare-and-set as its GPUs (libs/store commit-job.lua), and freed in the same script that
// frees node rank 0's GPUs: when the rank exits, or when heartbeat reconciliation finds its
// GPUs held by nothing (release-gpus.lua). No claim lives only in memory, so a scheduler
// killed at any point neither leaks a port nor gives one to two attempts.
import { z } from 'zod';

export interface PortRange {
  first: number;
  last: number;
}

export const DEFAULT_PORT_RANGE = '29500-29999';

export function parsePortRange(text: string): PortRange {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1024 || last > 65535 || first > last) throw new Error(`expected FIRST-LAST with 1024 <= FIRST <= LAST <= 65535, got ${JSON.stringify(text)}`);
  return { first, last };
}

/** Spread into the scheduler's env schema, so a bad range stops it at start-up naming the variable. */
export const rendezvousEnv = {
  /** Ports the scheduler hands out as MASTER_PORT, per host of node rank 0. */
  RENDEZVOUS_PORT_RANGE: z.string().default(DEFAULT_PORT_RANGE).transform((text, ctx) => {
    try {
      return parsePortRange(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  }),
};

/**
 * The lowest port of the range not claimed on the host; undefined when every one is. Lowest
 * first keeps the ports a host uses few and predictable (firewall rules, debugging).
 */
export function pickPort(range: PortRange, claimed: ReadonlySet<number>): number | undefined {
  for (let p = range.first; p <= range.last; p++) if (!claimed.has(p)) return p;
  return undefined;
}

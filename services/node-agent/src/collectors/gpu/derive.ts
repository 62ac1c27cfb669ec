// Per-interval GPU rates from two snapshots of the same GPU.
import { counterRate } from '../counters.js';
import type { GpuMetrics } from './types.js';

export interface GpuRates {
  eccSbePerSec?: number;
  eccDbePerSec?: number;
  pcieReplaysPerSec?: number;
  /** Share of the interval (0..1) clocks were held down, by reason. */
  throttleFraction: Record<string, number>;
}

/** Joins snapshots by UUID, falling back to bus id, then index. */
export function gpuKey(g: GpuMetrics): string {
  return g.uuid ?? g.pciBusId ?? `index:${g.index ?? '?'}`;
}

export function deriveGpuRates(prev: GpuMetrics, cur: GpuMetrics, seconds: number): GpuRates {
  const out: GpuRates = { throttleFraction: {} };
  // Volatile counts reset with the driver; a decrease is such a reset, counted from zero.
  const sbe = counterRate(prev.eccVolatileSbe, cur.eccVolatileSbe, seconds);
  const dbe = counterRate(prev.eccVolatileDbe, cur.eccVolatileDbe, seconds);
  const replay = counterRate(prev.pcieReplayCounter, cur.pcieReplayCounter, seconds);
  if (sbe !== undefined) out.eccSbePerSec = sbe;
  if (dbe !== undefined) out.eccDbePerSec = dbe;
  if (replay !== undefined) out.pcieReplaysPerSec = replay;
  for (const [reason, us] of Object.entries(cur.throttleCountersUs ?? {})) {
    const perSec = counterRate(prev.throttleCountersUs?.[reason], us, seconds);
    // Counters are microseconds: per second of wall time that is a fraction of 1e6.
    if (perSec !== undefined) out.throttleFraction[reason] = Math.min(1, perSec / 1e6);
  }
  return out;
}

// The per-GPU shape every GPU source (nvidia-smi CSV, nvidia-smi -q, DCGM exporter text)
// is parsed into. Every value is optional: a driver that prints [N/A] or lacks a field
// leaves it undefined, never NaN or 0.

export interface NvlinkStats {
  link: number;
  speedGBps?: number;
  active: boolean;
  /** Error counters by name (replay, recovery, crc_flit, crc_data, ...). */
  errors: Record<string, number>;
}

export interface GpuMetrics {
  index?: number;
  uuid?: string;
  name?: string;
  /** Normalised `00000000:bb:dd.f`. */
  pciBusId?: string;
  utilizationGpuPercent?: number;
  utilizationMemoryPercent?: number;
  memoryUsedMiB?: number;
  memoryTotalMiB?: number;
  temperatureGpuC?: number;
  temperatureMemoryC?: number;
  powerDrawW?: number;
  powerLimitW?: number;
  smClockMHz?: number;
  memoryClockMHz?: number;
  maxSmClockMHz?: number;
  pstate?: string;
  clockEventReasonsMask?: number;
  clockEventReasons?: string[];
  /** Cumulative microseconds clocks were held down, by reason (driver >= 535). */
  throttleCountersUs?: Record<string, number>;
  eccVolatileSbe?: number;
  eccVolatileDbe?: number;
  eccAggregateSbe?: number;
  eccAggregateDbe?: number;
  retiredPagesSbe?: number;
  retiredPagesDbe?: number;
  retiredPagesPending?: boolean;
  remappedRowsCorrectable?: number;
  remappedRowsUncorrectable?: number;
  remappedRowsPending?: boolean;
  remappedRowsFailure?: boolean;
  pcieReplayCounter?: number;
  /** `nvidia-smi pci -gErrCnt` L0_TO_RECOVERY_COUNTER: link retrains since the driver loaded. */
  pcieLinkRecoveryCounter?: number;
  pcieLinkGen?: number;
  pcieLinkWidth?: number;
  nvlinks?: NvlinkStats[];
  /** DCGM's XID_ERRORS gauge: the last Xid the GPU raised. */
  lastXid?: number;
  /** Set when nvidia-smi reports the GPU itself as unreachable ("[GPU is lost]"). */
  unavailable?: string;
}

/** NVML clocks event reason bits (nvmlClocksEventReason*), in bit order. */
export const CLOCK_EVENT_REASON_BITS: ReadonlyArray<readonly [number, string]> = [
  [0x1, 'gpu_idle'],
  [0x2, 'applications_clocks_setting'],
  [0x4, 'sw_power_cap'],
  [0x8, 'hw_slowdown'],
  [0x10, 'sync_boost'],
  [0x20, 'sw_thermal_slowdown'],
  [0x40, 'hw_thermal_slowdown'],
  [0x80, 'hw_power_brake_slowdown'],
  [0x100, 'display_clock_setting'],
];

export function clockEventReasonNames(mask: number): string[] {
  const out: string[] = [];
  for (const [bit, name] of CLOCK_EVENT_REASON_BITS) if ((mask & bit) !== 0) out.push(name);
  return out;
}

/** Merges metrics of the same GPU from several sources; earlier sources win on conflicts. */
export function mergeGpuMetrics(base: GpuMetrics, extra: GpuMetrics): GpuMetrics {
  const out: GpuMetrics = { ...extra, ...stripUndefined(base) };
  if (base.nvlinks === undefined && extra.nvlinks !== undefined) out.nvlinks = extra.nvlinks;
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

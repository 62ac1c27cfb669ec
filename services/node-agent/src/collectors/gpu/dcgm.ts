// DCGM exporter's Prometheus text → the same per-GPU shape as nvidia-smi, for hosts that
// run dcgm-exporter already (we read its /metrics instead of forking nvidia-smi).
import { normalizePciBusId } from '../pci.js';
import { clockEventReasonNames, type GpuMetrics } from './types.js';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?\s*$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;

/** Prometheus text exposition (0.0.4) samples; comments, blanks and junk lines are skipped. */
export function parsePromText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    LABEL.lastIndex = 0;
    let ok = true;
    while (LABEL.lastIndex < body.length) {
      const at = LABEL.lastIndex;
      const l = LABEL.exec(body);
      if (!l || LABEL.lastIndex === at) { ok = body.slice(at).trim() === ''; break; }
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    if (!ok) continue;
    const v = m[3]!;
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
    if (Number.isNaN(value) && v !== 'NaN') continue;
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

// DCGM's "blank" sentinels (DCGM_INT64_BLANK = 0x7ffffffffffffff0 and its neighbours,
// DCGM_FP64_BLANK = 2^47 and neighbours): a field with no value, not a reading.
function isBlank(v: number): boolean {
  return !Number.isFinite(v) || v >= 9.2233720368547e18 || (v >= 140737488355328 && v <= 140737488355331);
}

type Setter = (g: GpuMetrics, v: number) => void;

const FIELDS: Record<string, Setter> = {
  DCGM_FI_DEV_GPU_UTIL: (g, v) => { g.utilizationGpuPercent = v; },
  DCGM_FI_DEV_MEM_COPY_UTIL: (g, v) => { g.utilizationMemoryPercent = v; },
  DCGM_FI_DEV_FB_USED: (g, v) => { g.memoryUsedMiB = v; },
  DCGM_FI_DEV_GPU_TEMP: (g, v) => { g.temperatureGpuC = v; },
  DCGM_FI_DEV_MEMORY_TEMP: (g, v) => { g.temperatureMemoryC = v; },
  DCGM_FI_DEV_POWER_USAGE: (g, v) => { g.powerDrawW = v; },
  DCGM_FI_DEV_POWER_MGMT_LIMIT: (g, v) => { g.powerLimitW = v; },
  DCGM_FI_DEV_SM_CLOCK: (g, v) => { g.smClockMHz = v; },
  DCGM_FI_DEV_MEM_CLOCK: (g, v) => { g.memoryClockMHz = v; },
  DCGM_FI_DEV_CLOCK_THROTTLE_REASONS: setMask,
  DCGM_FI_DEV_CLOCKS_EVENT_REASONS: setMask,
  DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: (g, v) => { g.eccVolatileSbe = v; },
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: (g, v) => { g.eccVolatileDbe = v; },
  DCGM_FI_DEV_ECC_SBE_AGG_TOTAL: (g, v) => { g.eccAggregateSbe = v; },
  DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: (g, v) => { g.eccAggregateDbe = v; },
  DCGM_FI_DEV_RETIRED_SBE: (g, v) => { g.retiredPagesSbe = v; },
  DCGM_FI_DEV_RETIRED_DBE: (g, v) => { g.retiredPagesDbe = v; },
  DCGM_FI_DEV_RETIRED_PENDING: (g, v) => { g.retiredPagesPending = v > 0; },
  DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS: (g, v) => { g.remappedRowsCorrectable = v; },
  DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS: (g, v) => { g.remappedRowsUncorrectable = v; },
  DCGM_FI_DEV_ROW_REMAP_PENDING: (g, v) => { g.remappedRowsPending = v > 0; },
  DCGM_FI_DEV_ROW_REMAP_FAILURE: (g, v) => { g.remappedRowsFailure = v > 0; },
  DCGM_FI_DEV_PCIE_REPLAY_COUNTER: (g, v) => { g.pcieReplayCounter = v; },
  DCGM_FI_DEV_PCIE_LINK_GEN: (g, v) => { g.pcieLinkGen = v; },
  DCGM_FI_DEV_PCIE_LINK_WIDTH: (g, v) => { g.pcieLinkWidth = v; },
  DCGM_FI_DEV_XID_ERRORS: (g, v) => { g.lastXid = v; },
};

function setMask(g: GpuMetrics, v: number): void {
  if (!Number.isSafeInteger(v)) return;
  g.clockEventReasonsMask = v;
  g.clockEventReasons = clockEventReasonNames(v);
}

/**
 * Groups DCGM samples by GPU (UUID, else the gpu label). Series with MIG labels
 * (GPU_I_ID) describe one instance, not the GPU, and are left out of the GPU shape.
 */
export function parseDcgmExporterText(text: string): GpuMetrics[] {
  const byGpu = new Map<string, GpuMetrics & { fbFree?: number; fbReserved?: number }>();
  for (const s of parsePromText(text)) {
    if (!s.name.startsWith('DCGM_FI_')) continue;
    if (s.labels['GPU_I_ID'] !== undefined && s.labels['GPU_I_ID'] !== '') continue;
    const key = s.labels['UUID'] ?? s.labels['gpu'];
    if (key === undefined) continue;
    let g = byGpu.get(key);
    if (!g) {
      g = {};
      const idx = Number(s.labels['gpu']);
      if (s.labels['gpu'] !== undefined && Number.isSafeInteger(idx)) g.index = idx;
      if (s.labels['UUID']) g.uuid = s.labels['UUID'];
      if (s.labels['modelName']) g.name = s.labels['modelName'];
      const bus = normalizePciBusId(s.labels['pci_bus_id']);
      if (bus) g.pciBusId = bus;
      byGpu.set(key, g);
    }
    if (isBlank(s.value)) continue;
    if (s.name === 'DCGM_FI_DEV_FB_FREE') g.fbFree = s.value;
    else if (s.name === 'DCGM_FI_DEV_FB_RESERVED') g.fbReserved = s.value;
    else FIELDS[s.name]?.(g, s.value);
  }
  return [...byGpu.values()].map(({ fbFree, fbReserved, ...g }) => {
    // DCGM has no total; free + used (+ reserved) is what nvidia-smi calls memory.total.
    if (fbFree !== undefined && g.memoryUsedMiB !== undefined) g.memoryTotalMiB = fbFree + g.memoryUsedMiB + (fbReserved ?? 0);
    return g;
  });
}

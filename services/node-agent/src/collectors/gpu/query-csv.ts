// Parser for `nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]`.
// With a header, fields are read from it ("power.draw [W]" → power.draw); without one the
// caller passes the field list it asked for. Units in values ("631.95 W", "100 %") are
// stripped, and every bracketed or N/A answer ([N/A], [Not Supported], [Requested
// functionality has been deprecated], ...) becomes undefined.
import { parseNumber } from '../counters.js';
import { normalizePciBusId, type GpuInventoryEntry } from '../pci.js';
import { clockEventReasonNames, type GpuMetrics } from './types.js';

/** What the agent asks nvidia-smi for each cycle (the reader drops fields an old driver rejects). */
export const GPU_QUERY_FIELDS: readonly string[] = [
  'index', 'uuid', 'name', 'pci.bus_id',
  'utilization.gpu', 'utilization.memory', 'memory.used', 'memory.total',
  'temperature.gpu', 'temperature.memory', 'power.draw', 'power.limit',
  'clocks.current.sm', 'clocks.current.memory', 'clocks.max.sm', 'pstate',
  'clocks_event_reasons.active',
  'clocks_event_reasons_counters.sw_power_cap', 'clocks_event_reasons_counters.sync_boost',
  'clocks_event_reasons_counters.sw_thermal_slowdown', 'clocks_event_reasons_counters.hw_thermal_slowdown',
  'clocks_event_reasons_counters.hw_power_brake_slowdown',
  'ecc.errors.corrected.volatile.total', 'ecc.errors.uncorrected.volatile.total',
  'ecc.errors.corrected.aggregate.total', 'ecc.errors.uncorrected.aggregate.total',
  'retired_pages.single_bit_ecc.count', 'retired_pages.double_bit.count', 'retired_pages.pending',
  'remapped_rows.correctable', 'remapped_rows.uncorrectable', 'remapped_rows.pending', 'remapped_rows.failure',
  'pcie.link.gen.current', 'pcie.link.width.current',
];

/** The fingerprint query (DeviceBackend.fingerprint). */
export const GPU_INVENTORY_FIELDS: readonly string[] = ['index', 'uuid', 'name', 'memory.total', 'pci.bus_id'];

/**
 * The fingerprint query's output as the GPU inventory: a GPU that answers "[GPU is lost]",
 * "[Unknown Error]" or "[GPU requires reset]", or whose line nvidia-smi replaced with
 * "Unable to determine the device handle for GPU ...", is not in it (it fell off the bus).
 */
export function parseGpuInventoryCsv(text: string, fields: readonly string[] = GPU_INVENTORY_FIELDS): GpuInventoryEntry[] {
  return parseGpuQueryCsv(text, fields).flatMap((g) =>
    g.index === undefined || g.uuid === undefined || g.unavailable !== undefined
      ? []
      : [{ index: g.index, uuid: g.uuid, model: g.name ?? '', memoryMiB: g.memoryTotalMiB ?? 0, pciBusId: g.pciBusId ?? '' }]);
}

const UNIT_SUFFIX = /^(-?\d+(?:\.\d+)?)\s*(?:MiB|GiB|W|%|MHz|us|ms|C|KB\/s)$/;
const LOST = /GPU is lost|Unknown Error|GPU requires reset/i;

/** A CSV cell as text, or undefined when nvidia-smi says there is no value. */
export function cellText(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const t = raw.trim();
  if (t === '' || t === 'N/A' || t.startsWith('[')) return undefined;
  return t;
}

export function cellNumber(raw: string | undefined): number | undefined {
  const t = cellText(raw);
  if (t === undefined) return undefined;
  const m = UNIT_SUFFIX.exec(t);
  return parseNumber(m ? m[1] : t);
}

/** Yes/No, Active/Not Active, Enabled/Disabled, 1/0. */
export function cellBool(raw: string | undefined): boolean | undefined {
  const t = cellText(raw)?.toLowerCase();
  if (t === undefined) return undefined;
  if (t === 'yes' || t === 'active' || t === 'enabled' || t === 'true' || t === '1') return true;
  if (t === 'no' || t === 'not active' || t === 'disabled' || t === 'false' || t === '0') return false;
  return undefined;
}

/** "power.draw [W]" → "power.draw"; old throttle names → the current event-reason names. */
export function fieldKey(header: string): string {
  return header.trim().replace(/\s*\[[^\]]*\]$/, '').replace(/^clocks_throttle_reasons/, 'clocks_event_reasons');
}

const THROTTLE_COUNTERS = ['sw_power_cap', 'sync_boost', 'sw_thermal_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown'];

/** One row (field → cell) to the GPU shape. Unknown fields are ignored. */
export function gpuMetricsFromRow(row: ReadonlyMap<string, string>): GpuMetrics {
  const num = (k: string): number | undefined => cellNumber(row.get(k));
  const out: GpuMetrics = {};
  const set = <K extends keyof GpuMetrics>(k: K, v: GpuMetrics[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('index', num('index'));
  set('uuid', cellText(row.get('uuid')));
  set('name', cellText(row.get('name')));
  set('pciBusId', normalizePciBusId(cellText(row.get('pci.bus_id'))));
  set('utilizationGpuPercent', num('utilization.gpu'));
  set('utilizationMemoryPercent', num('utilization.memory'));
  set('memoryUsedMiB', num('memory.used'));
  set('memoryTotalMiB', num('memory.total'));
  set('temperatureGpuC', num('temperature.gpu'));
  set('temperatureMemoryC', num('temperature.memory'));
  set('powerDrawW', num('power.draw') ?? num('power.draw.instant'));
  set('powerLimitW', num('enforced.power.limit') ?? num('power.limit'));
  set('smClockMHz', num('clocks.current.sm') ?? num('clocks.sm'));
  set('memoryClockMHz', num('clocks.current.memory') ?? num('clocks.mem'));
  set('maxSmClockMHz', num('clocks.max.sm'));
  set('pstate', cellText(row.get('pstate')));
  const mask = num('clocks_event_reasons.active');
  if (mask !== undefined && Number.isSafeInteger(mask)) {
    out.clockEventReasonsMask = mask;
    out.clockEventReasons = clockEventReasonNames(mask);
  }
  const counters: Record<string, number> = {};
  for (const name of THROTTLE_COUNTERS) {
    const v = num(`clocks_event_reasons_counters.${name}`);
    if (v !== undefined) counters[name] = v;
  }
  if (Object.keys(counters).length > 0) out.throttleCountersUs = counters;
  // "total" is the sum over memory kinds; older drivers only have device_memory.
  set('eccVolatileSbe', num('ecc.errors.corrected.volatile.total') ?? num('ecc.errors.corrected.volatile.device_memory'));
  set('eccVolatileDbe', num('ecc.errors.uncorrected.volatile.total') ?? num('ecc.errors.uncorrected.volatile.device_memory'));
  set('eccAggregateSbe', num('ecc.errors.corrected.aggregate.total') ?? num('ecc.errors.corrected.aggregate.device_memory'));
  set('eccAggregateDbe', num('ecc.errors.uncorrected.aggregate.total') ?? num('ecc.errors.uncorrected.aggregate.device_memory'));
  set('retiredPagesSbe', num('retired_pages.single_bit_ecc.count') ?? num('retired_pages.sbe'));
  set('retiredPagesDbe', num('retired_pages.double_bit.count') ?? num('retired_pages.dbe'));
  set('retiredPagesPending', cellBool(row.get('retired_pages.pending')));
  set('remappedRowsCorrectable', num('remapped_rows.correctable'));
  set('remappedRowsUncorrectable', num('remapped_rows.uncorrectable'));
  set('remappedRowsPending', cellBool(row.get('remapped_rows.pending')));
  set('remappedRowsFailure', cellBool(row.get('remapped_rows.failure')));
  set('pcieLinkGen', num('pcie.link.gen.current') ?? num('pcie.link.gen.gpucurrent'));
  set('pcieLinkWidth', num('pcie.link.width.current'));
  for (const v of row.values()) {
    if (LOST.test(v)) {
      out.unavailable = v.trim().replace(/^\[|\]$/g, '');
      break;
    }
  }
  return out;
}

/**
 * Parses the whole CSV output. `fields` is the list passed to --query-gpu when the output
 * has no header; when omitted the first line is the header. Never throws: lines with the
 * wrong number of cells are skipped (a truncated read), so one bad line costs one GPU.
 */
export function parseGpuQueryCsv(text: string, fields?: readonly string[]): GpuMetrics[] {
  const lines = text.split('\n').filter((l) => l.trim().length > 0);
  let keys: string[];
  if (fields) {
    keys = fields.map(fieldKey);
  } else {
    const header = lines.shift();
    if (header === undefined) return [];
    keys = header.split(',').map(fieldKey);
  }
  const out: GpuMetrics[] = [];
  for (const line of lines) {
    const cells = line.split(',');
    if (cells.length !== keys.length) continue;
    const row = new Map<string, string>();
    for (let i = 0; i < keys.length; i++) row.set(keys[i]!, cells[i]!);
    out.push(gpuMetricsFromRow(row));
  }
  return out;
}

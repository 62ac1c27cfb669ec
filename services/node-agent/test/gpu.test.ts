import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDcgmExporterText, parsePromText } from '../src/collectors/gpu/dcgm.js';
import { deriveGpuRates } from '../src/collectors/gpu/derive.js';
import { fieldKey, GPU_QUERY_FIELDS, parseGpuQueryCsv } from '../src/collectors/gpu/query-csv.js';
import { parseNvlinkText, parsePciErrorCounters } from '../src/collectors/gpu/smi-text.js';
import { renderPciErrorCounters, type GpuState } from '../src/device/sim/render.js';
import type { GpuMetrics } from '../src/collectors/gpu/types.js';
import { captureSection, fixture } from './helpers/fixtures.js';

const SESSION = 'nvidia-smi/session-capture-h100-80gb-hbm3';
const capture = (model: string): string => fixture(`nvidia-smi/nvidia_gpu_exporter_capture__linux-x86_64__nvidia-${model}__590.48.01.txt`);

function noNaN(g: GpuMetrics): void {
  for (const [k, v] of Object.entries(g)) {
    if (typeof v === 'number') expect(Number.isFinite(v), k).toBe(true);
  }
}

describe('nvidia-smi --query-gpu CSV', () => {
  it('parses the real all-fields capture with header and units (H100, driver 580)', () => {
    const [g, ...rest] = parseGpuQueryCsv(fixture(`${SESSION}/query-gpu-all-fields.csv`));
    expect(rest).toEqual([]);
    expect(g).toMatchObject({
      index: 0, uuid: 'GPU-9b6c5236-63fa-edad-c3e6-063b1cf51ac7', name: 'NVIDIA H100 80GB HBM3', pciBusId: '00000000:00:06.0',
      utilizationGpuPercent: 0, memoryUsedMiB: 0, memoryTotalMiB: 81559, temperatureGpuC: 41, temperatureMemoryC: 44,
      powerDrawW: 73, powerLimitW: 700, smClockMHz: 345, memoryClockMHz: 2619, maxSmClockMHz: 1980, pstate: 'P0',
      clockEventReasonsMask: 1, clockEventReasons: ['gpu_idle'],
      eccVolatileSbe: 0, eccVolatileDbe: 0, eccAggregateSbe: 0, eccAggregateDbe: 0,
      remappedRowsCorrectable: 0, remappedRowsUncorrectable: 0, remappedRowsPending: false, remappedRowsFailure: false,
      pcieLinkGen: 5, pcieLinkWidth: 16,
    });
    expect(g!.throttleCountersUs).toEqual({ sw_power_cap: 0, sync_boost: 0, sw_thermal_slowdown: 0, hw_thermal_slowdown: 0, hw_power_brake_slowdown: 0 });
    // [N/A] on H100 (it remaps rows instead of retiring pages): absent, not 0 or NaN.
    expect(g!.retiredPagesSbe).toBeUndefined();
    expect(g!.retiredPagesDbe).toBeUndefined();
    expect(g!.retiredPagesPending).toBeUndefined();
    noNaN(g!);
  });

  it('parses the noheader,nounits capture with the field list taken from the header file', () => {
    const fields = fixture(`${SESSION}/query-gpu-all-fields.csv`).split('\n')[0]!.split(',').map(fieldKey);
    expect(fields).toHaveLength(198);
    const [g] = parseGpuQueryCsv(fixture(`${SESSION}/query-gpu-all-fields-noheader-nounits.csv`), fields);
    expect(g).toMatchObject({ uuid: 'GPU-9b6c5236-63fa-edad-c3e6-063b1cf51ac7', temperatureMemoryC: 43, powerDrawW: 72.99, memoryTotalMiB: 81559 });
    noNaN(g!);
  });

  it.each([
    ['h100-80gb-hbm3', 'idle', { utilizationGpuPercent: 0, powerDrawW: 69.85, temperatureGpuC: 41, clockEventReasons: ['gpu_idle'] }],
    ['h100-80gb-hbm3', 'load', { utilizationGpuPercent: 100, utilizationMemoryPercent: 11, memoryUsedMiB: 19818, powerDrawW: 631.95, temperatureGpuC: 59, smClockMHz: 1980, clockEventReasonsMask: 0 }],
    ['h200', 'load', { name: 'NVIDIA H200', pciBusId: '00000000:83:00.0', memoryTotalMiB: 143771, memoryUsedMiB: 32362, powerDrawW: 627.4, memoryClockMHz: 3201 }],
    ['h100-mig', 'load', { memoryUsedMiB: 11125, powerDrawW: 433.78, temperatureGpuC: 53 }],
  ] as const)('parses the nvidia_gpu_exporter %s capture under %s (csv with units)', (model, phase, expected) => {
    const gpus = parseGpuQueryCsv(captureSection(capture(model), `${phase} :: query-gpu (csv, what the exporter parses)`));
    expect(gpus).toHaveLength(1);
    expect(gpus[0]).toMatchObject(expected);
    noNaN(gpus[0]!);
  });

  it('leaves MIG-mode utilisation ([N/A]) undefined', () => {
    const [g] = parseGpuQueryCsv(captureSection(capture('h100-mig'), 'load :: query-gpu (csv, what the exporter parses)'));
    expect(g!.utilizationGpuPercent).toBeUndefined();
  });

  it('flags a lost GPU and skips rows with the wrong cell count', () => {
    const fields = ['index', 'uuid', 'temperature.gpu', 'power.draw'];
    const text = '0, GPU-a, 40, 100.5\n1, GPU-b, [GPU is lost], [GPU is lost]\n2, GPU-c, 41\n';
    const gpus = parseGpuQueryCsv(text, fields);
    expect(gpus.map((g) => g.uuid)).toEqual(['GPU-a', 'GPU-b']);
    expect(gpus[1]).toMatchObject({ index: 1, unavailable: 'GPU is lost' });
    expect(gpus[1]!.temperatureGpuC).toBeUndefined();
  });

  it('accepts the pre-535 clocks_throttle_reasons names', () => {
    const [g] = parseGpuQueryCsv('index, clocks_throttle_reasons.active\n0, 0x0000000000000060\n');
    expect(g!.clockEventReasons).toEqual(['sw_thermal_slowdown', 'hw_thermal_slowdown']);
  });

  it('asks for every field the GPU shape needs', () => {
    expect(GPU_QUERY_FIELDS).toContain('clocks_event_reasons.active');
    expect(GPU_QUERY_FIELDS).toContain('remapped_rows.pending');
  });
});

describe('nvidia-smi pci and nvlink text', () => {
  it('reads the PCIe error counters per GPU (pci -gErrCnt of a real H200), and the simulator prints the same shape', () => {
    expect(parsePciErrorCounters(fixture('nvidia-smi/session-capture-h200/pci-gErrCnt.txt'))).toEqual([
      { index: 0, uuid: 'GPU-95b72616-3f8a-2ffd-7128-d9e2f662695c', replays: 0, recoveries: 191 },
    ]);
    const gpu = (index: number, lost: boolean) => ({ index, uuid: `GPU-${index}`, name: 'NVIDIA H100 80GB HBM3', pcieReplays: 7 + index, pcieRecoveries: 40, lost }) as GpuState;
    // A lost GPU is not in the output (nvidia-smi cannot reach it).
    expect(parsePciErrorCounters(renderPciErrorCounters([gpu(0, false), gpu(1, true), gpu(2, false)]))).toEqual([
      { index: 0, uuid: 'GPU-0', replays: 7, recoveries: 40 },
      { index: 2, uuid: 'GPU-2', replays: 9, recoveries: 40 },
    ]);
  });

  it('reads nvlink -s of an 8 x A100 (12 links at 25 GB/s) and an H100 (18 links)', () => {
    const a100 = parseNvlinkText(fixture('nvidia-smi/gpud_testdata_nvidia-smi.nvlink.status.a100.txt'));
    expect(a100.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(a100[0]).toMatchObject({ name: 'NVIDIA A100-SXM4-80GB', uuid: 'GPU-5269b708-678a-b1a8-60f0-c90406537486' });
    for (const g of a100) {
      expect(g.links).toHaveLength(12);
      expect(g.links.every((l) => l.active && l.speedGBps === 25)).toBe(true);
    }
    const h100 = parseNvlinkText(captureSection(capture('h100-80gb-hbm3'), 'capabilities :: nvlink -s'));
    expect(h100[0]!.links).toHaveLength(18);
    expect(h100[0]!.links[17]).toMatchObject({ link: 17, speedGBps: 26.562, active: true });
  });

  it('merges error counter lines (nvlink -e) and inactive links into the same link', () => {
    const text = 'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-x)\n\t Link 0: 25 GB/s\n\t Link 0: Replay Errors: 3\n\t Link 0: CRC Errors: 1\n\t Link 1: <inactive>\n';
    expect(parseNvlinkText(text)[0]!.links).toEqual([
      { link: 0, active: true, speedGBps: 25, errors: { replay: 3, crc: 1 } },
      { link: 1, active: false, errors: {} },
    ]);
  });
});

describe('DCGM exporter text', () => {
  it('groups samples per GPU into the nvidia-smi shape', () => {
    const v100 = parseDcgmExporterText(fixture('nvidia-smi/dcgm-exporter/dcgm-exporter-issue250_v100_excerpt.prom'));
    expect(v100.map((g) => g.index).sort()).toEqual([0, 1, 2, 3]);
    expect(v100.find((g) => g.index === 2)).toMatchObject({ uuid: 'GPU-a9079f15-493e-6c1c-c78c-73ec2b840cba', name: 'Tesla V100-SXM2-32GB', powerLimitW: 300, pcieReplayCounter: 0 });
    const a100 = parseDcgmExporterText(fixture('nvidia-smi/dcgm-exporter/gpu-operator-issue467_a100_80gb_pcie_excerpt.prom'));
    expect(a100).toEqual([{ index: 0, uuid: 'GPU-c89b14a3-ce7c-6725-8424-b55d37d9c332', name: 'NVIDIA A100 80GB PCIe', lastXid: 0, memoryUsedMiB: 741, memoryTotalMiB: 80328 + 741 }]);
    const h100 = parseDcgmExporterText(fixture('nvidia-smi/dcgm-exporter/digitalocean_docs_h100_excerpt.prom'));
    expect(h100[0]).toMatchObject({ pciBusId: '00000000:00:09.0', smClockMHz: 345, memoryClockMHz: 2619 });
  });

  it('treats the DCGM blank sentinel as no value and skips the "..." elisions', () => {
    const [g] = parseDcgmExporterText(fixture('nvidia-smi/dcgm-exporter/dcgm-exporter_README_excerpt.prom'));
    expect(g).toMatchObject({ uuid: 'GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52', smClockMHz: 139, memoryClockMHz: 405 });
    expect(g!.temperatureMemoryC).toBeUndefined();
  });

  it('keeps MIG instance series out of the GPU shape but parses their labels', () => {
    const text = fixture('nvidia-smi/dcgm-exporter/issue512_h100_mig_excerpt.prom');
    expect(parseDcgmExporterText(text)).toEqual([]);
    const s = parsePromText(text);
    expect(s.map((x) => x.labels['GPU_I_ID'])).toEqual(['7', '8', '9']);
    expect(s[0]!.labels['pod']).toBe('text-embedding-predictor-00008-deployment-57946f6c67-vdtjl');
  });
});

describe('GPU rates', () => {
  it('derives ECC and replay rates and throttle fractions, surviving a driver reload', () => {
    const a: GpuMetrics = { eccVolatileSbe: 10, eccVolatileDbe: 0, pcieReplayCounter: 5, throttleCountersUs: { hw_thermal_slowdown: 1_000_000 } };
    const b: GpuMetrics = { eccVolatileSbe: 30, eccVolatileDbe: 1, pcieReplayCounter: 25, throttleCountersUs: { hw_thermal_slowdown: 6_000_000 } };
    expect(deriveGpuRates(a, b, 10)).toEqual({ eccSbePerSec: 2, eccDbePerSec: 0.1, pcieReplaysPerSec: 2, throttleFraction: { hw_thermal_slowdown: 0.5 } });
    // volatile counters restart at 0 after a reload: count from zero
    expect(deriveGpuRates(b, { eccVolatileSbe: 4 }, 2).eccSbePerSec).toBe(2);
  });
});

describe('robustness (fast-check)', () => {
  const header = fixture(`${SESSION}/query-gpu-all-fields.csv`);
  const dcgm = fixture('nvidia-smi/dcgm-exporter/dcgm-exporter-issue250_v100_excerpt.prom');
  const nvlink = fixture('nvidia-smi/gpud_testdata_nvidia-smi.nvlink.status.a100.txt');
  const pci = fixture('nvidia-smi/session-capture-h200/pci-gErrCnt.txt');
  const mutate = (s: string) => fc.tuple(fc.nat(), fc.string({ maxLength: 12 }), fc.nat()).map(([at, ins, del]) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + ins + s.slice(i + (del % 40));
  });
  const truncate = (s: string) => fc.nat().map((n) => s.slice(0, n % (s.length + 1)));

  it('never throws and never yields NaN', () => {
    for (const src of [header, dcgm, nvlink, pci]) {
      for (const arb of [fc.string({ maxLength: 400 }), mutate(src), truncate(src)]) {
        fc.assert(fc.property(arb, (text) => {
          for (const g of [...parseGpuQueryCsv(text), ...parseGpuQueryCsv(text, GPU_QUERY_FIELDS), ...parseDcgmExporterText(text)]) noNaN(g);
          for (const c of parsePciErrorCounters(text)) noNaN(c);
          parseNvlinkText(text);
        }), { numRuns: 150 });
      }
    }
  });
});

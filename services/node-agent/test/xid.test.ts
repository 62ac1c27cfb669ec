import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GpuInventory, normalizePciBusId } from '../src/collectors/pci.js';
import { lookupXid } from '../src/collectors/xid/catalog.js';
import { catalogCsvPath, catalogModulePath, parseCatalogCsv, renderCatalogModule } from '../src/collectors/xid/catalog-gen.js';
import { parseKernelLogLine } from '../src/collectors/xid/kernel-log.js';
import { parseXidLine, parseXidLog, XidLogParser } from '../src/collectors/xid/parse.js';
import { fixture } from './helpers/fixtures.js';

interface Row { id: number; format: string; xid: string; line: string }

const rows: Row[] = fixture('xid/xid_lines.tsv').trimEnd().split('\n').slice(1).map((l) => {
  const [id, format, xid, , line] = l.split('\t');
  return { id: Number(id), format: format!, xid: xid!, line: line! };
});
const row = (id: number): Row => rows.find((r) => r.id === id)!;

describe('parseXidLine on every collected kernel log line (xid_lines.tsv)', () => {
  it('has the 51 rows and 34 Xid lines the provenance describes', () => {
    expect(rows).toHaveLength(51);
    expect(rows.filter((r) => r.xid !== '')).toHaveLength(34);
  });

  it.each(rows.filter((r) => r.xid !== ''))('row $id ($format) is Xid $xid', (r) => {
    const m = parseXidLine(r.line);
    expect(m?.xid).toBe(Number(r.xid));
    expect(m?.inferred).toBe(false);
    expect(m?.pciBusId).toMatch(/^[0-9a-f]{8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
  });

  it('reports nothing for context lines except the three "fallen off the bus" reports', () => {
    const inferred = rows.filter((r) => r.xid === '' && parseXidLine(r.line) !== undefined).map((r) => r.id);
    expect(inferred).toEqual([45, 53, 55]);
    for (const id of inferred) expect(parseXidLine(row(id).line)).toMatchObject({ xid: 79, inferred: true });
    expect(parseXidLine(row(45).line)?.pciBusId).toBe('00000000:2b:00.0');
    expect(parseXidLine(row(55).line)?.pciBusId).toBe('00000000:01:00.0');
  });

  it('extracts pid, process name, bus id and message per format', () => {
    expect(parseXidLine(row(1).line)).toMatchObject({ xid: 13, pciBusId: '00000000:41:00.0', message: expect.stringMatching(/^Graphics Exception: ESR 0x5067b0/) });
    expect(parseXidLine(row(1).line)?.pid).toBeUndefined();
    // pid='<unknown>', name=<unknown> → both absent
    const unknown = parseXidLine(row(8).line)!;
    expect(unknown).toMatchObject({ xid: 13, pciBusId: '00000000:cb:00.0' });
    expect(unknown.pid).toBeUndefined();
    expect(unknown.processName).toBeUndefined();
    expect(unknown.message).toMatch(/^Graphics SM Warp Exception on \(GPC 7, TPC 7, SM 0\)/);
    expect(parseXidLine(row(26).line)).toMatchObject({ xid: 31, pid: 13705, processName: 'UnrealEditor', pciBusId: '00000000:01:00.0' });
    expect(parseXidLine(row(27).line)).toMatchObject({ xid: 31, pid: 11461, pciBusId: '00000000:0c:00.0', message: expect.stringMatching(/^Ch 00000053/) });
    expect(parseXidLine(row(29).line)).toMatchObject({ xid: 31, pid: 12890, pciBusId: '00000000:c1:00.0' });
    expect(parseXidLine(row(31).line)).toMatchObject({ xid: 31, pid: 169800, processName: 'chrome', pciBusId: '00000000:08:00.0' });
    expect(parseXidLine(row(33).line)).toMatchObject({ xid: 45, pid: 1818990, processName: 'python3', pciBusId: '00000000:dc:00.0', message: 'Ch 00000001 caused by previous Xid 149' });
    expect(parseXidLine(row(38).line)).toMatchObject({ xid: 149, pciBusId: '00000019:01:00.0', fatal: true });
    expect(parseXidLine(row(41).line)).toMatchObject({ xid: 144, pciBusId: '00000000:01:00.0', fatal: false });
    expect(parseXidLine(row(44).line)).toMatchObject({ xid: 79, pciBusId: '00000000:2b:00.0', message: 'GPU has fallen off the bus.' });
    expect(parseXidLine(row(46).line)).toMatchObject({ xid: 63, pid: 1896, pciBusId: '00000000:10:1c.0' });
    expect(parseXidLine(row(50).line)).toMatchObject({ xid: 64, pciBusId: '00000000:07:00.0', message: expect.stringMatching(/^Dynamic Page Retirement: Blacklisting failed/) });
    // Old driver: "Xid (0000:01:00): 3" without the PCI: prefix.
    expect(parseXidLine(row(56).line)).toMatchObject({ xid: 3, pciBusId: '00000000:01:00.0', message: 'C 00000005 SC 00000007 M 00001ffc Data ffffffff' });
  });
});

describe('kernel log prefixes', () => {
  it('splits each format into its time and message', () => {
    expect(parseKernelLogLine(row(12).line)).toMatchObject({ format: 'dmesg', uptimeSeconds: 1204.123584 });
    const ctime = parseKernelLogLine(row(8).line);
    expect(ctime.format).toBe('dmesg-ctime');
    expect(ctime.time?.getFullYear()).toBe(2024);
    expect(ctime.time?.getMonth()).toBe(7);
    const sys = parseKernelLogLine(row(1).line, { year: 2019 });
    expect(sys).toMatchObject({ format: 'syslog', host: 'Gipfeli', uptimeSeconds: 82659.755847 });
    expect(sys.message.startsWith('NVRM: Xid')).toBe(true);
    expect(parseKernelLogLine(row(43).line)).toMatchObject({ format: 'syslog', message: expect.stringMatching(/^NVRM: GPU at PCI/) });
    expect(parseKernelLogLine(row(43).line).host).toBeUndefined();
    expect(parseKernelLogLine(row(33).line)).toMatchObject({ format: 'journalctl-short' });
    const iso = parseKernelLogLine('2025-02-23T16:24:18+0000 node-3 kernel: NVRM: Xid (PCI:0000:9b:00): 119, pid=1, name=x, Timeout');
    expect(iso).toMatchObject({ format: 'journalctl-iso', host: 'node-3' });
    expect(iso.time?.toISOString()).toBe('2025-02-23T16:24:18.000Z');
    const kmsg = parseKernelLogLine(fixture('xid/gpud_testdata_kmsg.2.peermem.log').split('\n')[0]!);
    expect(kmsg).toMatchObject({ format: 'kmsg', priority: 6, seq: 3973, uptimeSeconds: 227.996636 });
    const decode = parseKernelLogLine(fixture('xid/gpud_testdata_nccl_dmesg.decode.iso.log').split('\n')[0]!);
    expect(decode.format).toBe('dmesg-decode-iso');
    expect(decode.time?.toISOString()).toBe('2025-01-21T04:41:44.285Z');
    expect(decode.message).toMatch(/^pt_main_thread\[2536443\]: segfault/);
  });
});

describe('XidLogParser on whole logs', () => {
  it('joins the multi-line "fallen off the bus" report into one inferred Xid 79', () => {
    const events = parseXidLog(fixture('xid/kernel_log_dmesg-multiline.log'));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ xid: 79, inferred: true, pciBusId: '00000000:b3:00.0', severity: 'critical', causeClass: 'hardware', immediateAction: 'RESTART_BM' });
    expect(events[0]!.raw.split('\n')).toHaveLength(3);
  });

  it('reports an Xid 79 and its plain-text twin once, with the UUID the driver printed', () => {
    const events = parseXidLog(fixture('xid/kernel_log_journalctl-nohost.log'));
    expect(events.map((e) => [e.xid, e.inferred, e.gpuUuid])).toEqual([[79, false, 'GPU-0b11d014-1685-04bd-26ed-5fc0bc1c44ae']]);
  });

  it('finds the five GSP timeouts (Xid 119) among stack traces and RPC tables', () => {
    const events = parseXidLog(fixture('xid/gpud_testdata_dmesg-with-xid-119.log'));
    expect(events.map((e) => [e.xid, e.pid, e.processName])).toEqual([
      [119, 2024380, 'nvidia-smi'], [119, 2024380, 'nvidia-smi'], [119, 2024380, 'nvidia-smi'],
      [119, 1263500, 'cache_mgr_main'], [119, 1240590, 'gpud'],
    ]);
    for (const e of events) expect(e).toMatchObject({ pciBusId: '00000000:9b:00.0', gpuUuid: 'GPU-509665ad-b600-ac93-3616-d754b23d636d', mnemonic: 'GSP_RPC_TIMEOUT', severity: 'critical' });
    expect(new Set(events.map((e) => e.eventId)).size).toBe(5);
    expect(events[3]!.time?.getHours()).toBe(16);
    expect(events[3]!.time?.getMinutes()).toBe(27);
  });

  it('finds nothing in the peermem kmsg records and the NCCL segfault', () => {
    expect(parseXidLog(fixture('xid/gpud_testdata_kmsg.2.peermem.log'))).toEqual([]);
    expect(parseXidLog(fixture('xid/gpud_testdata_nccl_dmesg.decode.iso.log'))).toEqual([]);
  });

  it('counts the Xids of every per-format log file', () => {
    const counts = Object.fromEntries(['bare', 'dmesg', 'dmesg-ctime', 'journalctl', 'journalctl-short', 'syslog'].map((f) =>
      [f, parseXidLog(fixture(`xid/kernel_log_${f}.log`)).map((e) => e.xid)]));
    expect(counts).toEqual({
      bare: [31, 31, 31, 149, 149, 144, 149, 63],
      dmesg: [13, 13, 13, 13, 31, 13, 13, 13, 32, 31],
      'dmesg-ctime': [13, 13, 13],
      journalctl: [31],
      'journalctl-short': [45, 45, 45, 45],
      syslog: [13, 13, 13, 13, 13, 64, 79, 3],
    });
  });

  it('maps bus ids to the GPU inventory in any spelling', () => {
    const inventory = new GpuInventory([
      { index: 5, uuid: 'GPU-aaaa', model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, pciBusId: '00000000:CB:00.0' },
    ]);
    const events = parseXidLog(fixture('xid/kernel_log_dmesg-ctime.log'), { inventory });
    expect(events.map((e) => [e.gpuIndex, e.gpuUuid])).toEqual([[5, 'GPU-aaaa'], [5, 'GPU-aaaa'], [5, 'GPU-aaaa']]);
    expect(normalizePciBusId('PCI:0000:01:00')).toBe('00000000:01:00.0');
    expect(normalizePciBusId('0000:18:00.0')).toBe('00000000:18:00.0');
    expect(normalizePciBusId('00000000:1A:00.0')).toBe('00000000:1a:00.0');
    expect(normalizePciBusId('10de:26b5')).toBeUndefined();
  });
});

describe('XID catalogue', () => {
  it('is generated from the CSV (run catalog-gen.ts after editing the CSV)', () => {
    expect(readFileSync(catalogModulePath, 'utf8')).toBe(renderCatalogModule(readFileSync(catalogCsvPath, 'utf8')));
    expect(parseCatalogCsv(readFileSync(catalogCsvPath, 'utf8'))).toHaveLength(51);
  });

  it('classifies Xids with class, severity and action', () => {
    expect(lookupXid(79)).toMatchObject({ mnemonic: 'ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS', causeClass: 'hardware', severity: 'critical', immediateAction: 'RESTART_BM' });
    expect(lookupXid(13)).toMatchObject({ causeClass: 'application', severity: 'error', immediateAction: 'RESTART_APP' });
    expect(lookupXid(48)).toMatchObject({ causeClass: 'memory', severity: 'critical' });
    expect(lookupXid(63)).toMatchObject({ causeClass: 'memory', severity: 'warning', immediateAction: 'IGNORE' });
    expect(lookupXid(45)).toMatchObject({ causeClass: 'secondary', severity: 'warning' });
    expect(lookupXid(154)).toMatchObject({ causeClass: 'informational', severity: 'critical' });
    expect(lookupXid(3)).toMatchObject({ mnemonic: 'UNKNOWN', causeClass: 'unknown', severity: 'warning' });
  });

  it('downgrades Nonfatal NVLink5 reports', () => {
    const [fatal] = parseXidLog(row(38).line);
    const [nonfatal] = parseXidLog(row(41).line);
    expect(fatal).toMatchObject({ xid: 149, fatal: true, severity: 'critical', causeClass: 'nvlink' });
    expect(nonfatal).toMatchObject({ xid: 144, fatal: false, severity: 'warning' });
  });
});

describe('robustness (fast-check)', () => {
  const samples = rows.map((r) => r.line);
  const mutated = fc.tuple(fc.constantFrom(...samples), fc.nat(), fc.string({ maxLength: 8 }), fc.nat()).map(([s, at, ins, del]) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + ins + s.slice(i + (del % 6));
  });
  const truncated = fc.tuple(fc.constantFrom(...samples), fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1)));

  it('never throws on random strings, mutations and truncations', () => {
    for (const arb of [fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 200 }), mutated, truncated]) {
      fc.assert(fc.property(arb, (line) => {
        parseKernelLogLine(line);
        const m = parseXidLine(line);
        if (m) {
          expect(Number.isInteger(m.xid)).toBe(true);
          if (m.pid !== undefined) expect(Number.isSafeInteger(m.pid)).toBe(true);
        }
      }), { numRuns: 400 });
    }
  });

  it('keeps a stream parser alive through garbage', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.string({ maxLength: 120 }), mutated, truncated), { maxLength: 30 }), (lines) => {
      const p = new XidLogParser();
      for (const l of lines) expect(Array.isArray(p.push(l))).toBe(true);
      // and still parses a good line afterwards
      expect(p.push(row(44).line).map((e) => e.xid)).toEqual([79]);
    }), { numRuns: 200 });
  });
});

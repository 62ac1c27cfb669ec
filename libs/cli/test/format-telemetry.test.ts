// The telemetry and node-event views, from realistic messages (absent optionals included).
import { describe, expect, it } from 'vitest';
import { GetNodeTelemetryResponse, NodeState, TelemetryBatch, XidEvent, XidSeverity } from '@gantry/proto';
import {
  bytesFromMib,
  gbitPerSec,
  gib,
  gpuTable,
  historyTable,
  mbPerSec,
  nfsTable,
  nicTable,
  nodeEventLine,
  num,
  percent,
  rdmaTable,
  sortEventsNewestFirst,
  telemetryDetail,
  xidText,
} from '../src/format-telemetry.js';
import { NOW, ago, sampleEvents, sampleTelemetry } from './fixtures.js';

const lines = (text: string) => text.trimEnd().split('\n');

describe('units', () => {
  it('converts base units to human ones, and absent to "-" (never 0)', () => {
    expect(gib(bytesFromMib(81_559))).toBe('79.6');
    expect(mbPerSec(250_000_000)).toBe('250.0');
    expect(gbitPerSec(12_500_000_000)).toBe('100.00');
    expect(percent(0.42)).toBe('42');
    expect(num(1530.254)).toBe('1530.25');
    expect(num(0)).toBe('0');
    for (const f of [gib, mbPerSec, gbitPerSec, percent, num]) expect(f(undefined)).toBe('-');
    expect(gib(bytesFromMib(undefined))).toBe('-');
  });
});

describe('gpuTable', () => {
  const [head, gpu0, gpu1, gpu2] = lines(gpuTable(sampleTelemetry.gpus));

  it('has one column per health signal', () => {
    expect(head!.split(/\s{2,}/)).toEqual(['GPU', 'UTIL %', 'MEM GiB', 'TEMP °C', 'POWER W', 'SM MHz', 'ECC SBE/DBE', 'ROWS PEND/FAIL', 'PCIE REPL/RECOV', 'NVLINK ERR', 'THROTTLE']);
  });

  it('shows a healthy busy GPU, with zeros that were reported as zeros', () => {
    expect(gpu0!.split(/\s{2,}/)).toEqual(['0', '97', '40.0/79.6', '64', '612/700', '1980', '0/0', 'no/no', '0/191', '0', 'none']);
  });

  it('shows throttle reasons with their share of the interval, ECC, a pending remap and NVLink trouble', () => {
    expect(gpu1!.split(/\s{2,}/)).toEqual(['1', '100', '77.1/79.6', '87', '700/700', '1410', '12/0', 'yes/no', '3/12', '5 (1 down)', 'sw_power_cap(35%),sw_thermal_slowdown']);
  });

  it('prints "-" for every value a lost GPU did not report', () => {
    expect(gpu2!.split(/\s{2,}/)).toEqual(['2', ...Array(10).fill('-')]);
  });

  it('keeps half-reported pairs readable and sorts by index', () => {
    const t = TelemetryBatch.fromPartial({ gpus: [{ index: 5, memoryTotalMib: 1024, ecc: { volatileDoubleBit: 1 }, retiredPagesPending: true, clockEventReasonsMask: 0x8 }, { index: 4 }] });
    const [, four, five] = lines(gpuTable(t.gpus));
    expect(four!.startsWith('4 ')).toBe(true);
    expect(five!.split(/\s{2,}/)).toEqual(['5', '-', '-/1.0', '-', '-', '-', '-/1', 'yes/-', '-', '-', '0x8']);
  });
});

describe('nfsTable', () => {
  it('shows rates in MB/s, ms and %, and "-" for a mount without rates yet', () => {
    const [head, home, ckpt] = lines(nfsTable(sampleTelemetry.nfsMounts));
    expect(head!.split(/\s{2,}/)).toEqual(['MOUNTPOINT', 'SERVER:EXPORT', 'PROTO', 'READ MB/s', 'WRITE MB/s', 'OPS/s', 'RETRANS/s', 'RTT ms', 'EXEC ms', 'BACKLOG', 'SLOTS %']);
    expect(home!.split(/\s{2,}/)).toEqual(['/home', 'nfs01:/export/home', 'tcp', '12.5', '250.0', '1530.25', '0.4', '1.25', '1.6', '0.5', '42']);
    expect(ckpt!.split(/\s{2,}/)).toEqual(['/mnt/checkpoints', 'nfs02:/ckpt', 'rdma', ...Array(8).fill('-')]);
  });
});

describe('rdmaTable and nicTable', () => {
  it('shows link state, rate, Gb/s and error counters with their rising rate', () => {
    const [head, ib, roce] = lines(rdmaTable(sampleTelemetry.rdmaPorts));
    expect(head!.split(/\s{2,}/)).toEqual(['PORT', 'LINK', 'STATE', 'RATE', 'RX Gb/s', 'TX Gb/s', 'SYMBOL ERR', 'LINK DOWNED', 'RCV ERR', 'OUT OF SEQ', 'RETRANS']);
    expect(ib!.split(/\s{2,}/)).toEqual(['mlx5_0/1', 'InfiniBand', 'ACTIVE/LinkUp', '400 Gb/s', '97.12', '95.00', '0', '1', '7 (+0.2/s)', '-', '-']);
    // RoCE: no IB port counters, the driver's hw_counters (retransmissions = retrans + retrans_to).
    expect(roce!.split(/\s{2,}/)).toEqual(['mlx5_1/1', 'Ethernet', 'DOWN/Disabled', '-', '-', '-', '-', '-', '-', '42', '6']);
  });

  it('shows NIC throughput and PFC pause frames per second', () => {
    const [head, eth2] = lines(nicTable(sampleTelemetry.nics));
    expect(head!.split(/\s{2,}/)).toEqual(['INTERFACE', 'RX Gb/s', 'TX Gb/s', 'RX PAUSE/s', 'TX PAUSE/s', 'RX DISCARDS/s', 'OUT OF BUFFER/s']);
    expect(eth2!.split(/\s{2,}/)).toEqual(['eth2', '10.00', '1.00', '12', '0', '0', '-']);
  });
});

describe('telemetryDetail', () => {
  const res = GetNodeTelemetryResponse.fromPartial({ latest: sampleTelemetry, history: [] });

  it('starts with the batch time and age, interval, sequence and collector errors (first line only)', () => {
    const text = telemetryDetail(res, NOW);
    expect(text.startsWith('Telemetry:\n  Time:            2026-01-01T11:59:56.000Z (4s ago)\n  Interval:        5s\n  Sequence:        1234\n')).toBe(true);
    expect(text).toContain('  Collector errors:\n    ethtool: ethtool -S eth3: exit code 1\n');
    expect(text).not.toContain('more detail');
    for (const section of ['GPUs:\n', 'NFS mounts:\n', 'RDMA ports:\n', 'NICs:\n']) expect(text).toContain(section);
    expect(text).not.toContain('History');
  });

  it('says "none" when no collector failed, and leaves out empty sections', () => {
    const text = telemetryDetail({ latest: TelemetryBatch.fromPartial({ time: ago(10), seq: 1, gpus: [{ index: 0 }] }), history: [] }, NOW);
    expect(text).toContain('  Interval:         -\n');
    expect(text).toContain('  Collector errors: none\n');
    expect(text).toContain('GPUs:\n');
    expect(text).not.toMatch(/NFS|RDMA|NICs/);
  });

  it('adds the compact history, newest first, after the latest batch', () => {
    const older = TelemetryBatch.fromPartial({
      time: ago(9),
      seq: 1233,
      gpus: [{ index: 0, temperatureGpuCelsius: 60, utilizationGpuPercent: 50 }, { index: 1, utilizationGpuPercent: 30 }],
      nfsMounts: [{ rates: { writeBytesPerSecond: 1_000_000 } }, { rates: { writeBytesPerSecond: 500_000 } }],
    });
    const text = telemetryDetail({ latest: sampleTelemetry, history: [older, TelemetryBatch.fromPartial({ seq: 1232 })] }, NOW);
    const history = text.slice(text.indexOf('History (newest first):\n'));
    expect(lines(history)).toEqual([
      'History (newest first):',
      'TIME                      SEQ   MAX TEMP °C  AVG UTIL %  NFS WRITE MB/s  ERRORS',
      '2026-01-01T11:59:56.000Z  1234  87           99          250.0           1',
      '2026-01-01T11:59:51.000Z  1233  60           40          1.5             0',
      '-                         1232  -            -           -               0',
    ]);
    expect(historyTable([])).toContain('TIME');
  });
});

describe('node events', () => {
  it('formats an XID with GPU, severity, cause class, mnemonic, message and action', () => {
    expect(nodeEventLine(sampleEvents[0]!)).toBe(
      '2026-01-01T11:59:30.000Z  XID 79 GPU 2 (GPU-2) critical hardware ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS: GPU has fallen off the bus. - action: RESTART_BM',
    );
  });

  it('formats a transition with its reason', () => {
    expect(nodeEventLine(sampleEvents[1]!)).toBe('2026-01-01T11:59:29.000Z  STATE READY -> LOST: node gpu-01 lost: no heartbeat for 4s');
    expect(nodeEventLine(sampleEvents[3]!)).toBe('2026-01-01T11:00:00.000Z  STATE READY');
  });

  it('names the GPU by bus id when its index is unknown, and the process when known', () => {
    expect(nodeEventLine(sampleEvents[2]!)).toBe('2026-01-01T11:50:00.000Z  XID 13 GPU ? (00000000:18:00.0) error application GR_EXCEPTION: Graphics SM Warp Exception [pid 4242 python]');
  });

  it('marks inferred and (non)fatal XIDs and survives a bare one', () => {
    expect(xidText(XidEvent.fromPartial({ xid: 79, gpuIndex: 3, inferred: true, message: 'GPU has fallen off the bus.' }))).toBe('XID 79 GPU 3 [inferred]: GPU has fallen off the bus.');
    expect(xidText(XidEvent.fromPartial({ xid: 145, gpuIndex: 0, fatal: false, severity: XidSeverity.XID_SEVERITY_WARNING, causeClass: 'nvlink' }))).toBe('XID 145 GPU 0 warning nvlink [nonfatal]');
    expect(nodeEventLine({ time: undefined, event: undefined })).toBe('-  UNKNOWN event');
  });

  it('orders newest first, stably, with undated events last', () => {
    const at = (s: number, id: string) => ({ time: ago(s), event: { $case: 'transition' as const, transition: { eventId: id, nodeName: 'n', fromState: 0, toState: NodeState.NODE_STATE_READY, reason: '', time: ago(s) } } });
    const undated = { time: undefined, event: undefined };
    const sorted = sortEventsNewestFirst([at(10, 'a'), undated, at(5, 'b'), at(10, 'c')]);
    expect(sorted.map((e) => (e.event?.$case === 'transition' ? e.event.transition.eventId : '-'))).toEqual(['b', 'a', 'c', '-']);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveNicRates, deriveRdmaPortRates } from '../src/collectors/rdma/derive.js';
import { parseCodedState, parseEthtoolStats, parseInfinibandTree, parseRate } from '../src/collectors/rdma/sysfs.js';
import { extractTtar, fixture, loadTree } from './helpers/fixtures.js';

const H100 = loadTree('rdma/gpud-sys-class-infiniband-h100.0');
const TTAR = extractTtar(fixture('rdma/procfs_fixtures_sys_class_infiniband.ttar'), 'fixtures/sys/class/infiniband');

describe('/sys/class/infiniband of an 8 x H100 node', () => {
  const ports = parseInfinibandTree(H100);

  it('finds the 8 NDR InfiniBand ports and the RoCE bond', () => {
    expect(ports.map((p) => `${p.device}/${p.port}`)).toEqual([
      'mlx5_0/1', 'mlx5_1/1', 'mlx5_4/1', 'mlx5_5/1', 'mlx5_6/1', 'mlx5_7/1', 'mlx5_8/1', 'mlx5_9/1', 'mlx5_bond_0/1',
    ]);
    expect(ports.filter((p) => p.linkLayer === 'InfiniBand' && p.rateGbps === 400 && p.state === 'ACTIVE')).toHaveLength(8);
    expect(ports.at(-1)).toMatchObject({ device: 'mlx5_bond_0', linkLayer: 'Ethernet', rateGbps: 200, rateText: '200 Gb/sec (2X NDR)', hcaType: 'MT41692', firmwareVersion: '32.38.3056' });
  });

  it('reads counters and hw_counters of mlx5_0', () => {
    const p = ports[0]!;
    expect(p).toMatchObject({ state: 'ACTIVE', stateCode: 4, physState: 'LinkUp', physStateCode: 5, hcaType: 'MT4129', firmwareVersion: '28.41.1000', boardId: 'MT_0000000838' });
    expect(p.counters).toMatchObject({
      port_rcv_data: 230539874932483, port_xmit_data: 230442669431839, port_rcv_packets: 317548853677,
      excessive_buffer_overrun_errors: 15, port_rcv_errors: 14, port_xmit_wait: 2489603687, link_downed: 0, symbol_error: 0,
    });
    expect(Object.keys(p.counters)).toHaveLength(21);
    expect(p.hwCounters).toMatchObject({ roce_adp_retrans: 3, lifespan: 12, rx_dct_connect: 422237, rx_write_requests: 3809045607, out_of_sequence: 0 });
  });
});

describe('procfs ttar fixture (hfi1, mlx4 with two ports, mlx5 with hw_counters)', () => {
  it('extracts the archive, including the EOF-without-newline and two-line records', () => {
    expect(TTAR.get('mlx5_0/node_guid')).toBe('0a7f:bc12:45ef:d23b');
    expect(TTAR.get('mlx4_0/ports/2/link_layer')).toBe('InfiniBand\n\n');
  });

  it('parses every port', () => {
    const ports = parseInfinibandTree(TTAR);
    expect(ports.map((p) => [p.device, p.port, p.rateGbps])).toEqual([['hfi1_0', 1, 100], ['mlx4_0', 1, 40], ['mlx4_0', 2, 40], ['mlx5_0', 1, 25]]);
    expect(ports[0]).toMatchObject({ boardId: 'HPE 100Gb 1-port OP101 QSFP28 x16 PCIe Gen3 with Intel Omni-Path Adapter', counters: { port_rcv_data: 345091702026, port_xmit_packets: 568318856 } });
    expect(ports[2]!.counters['port_xmit_wait']).toBe(3846);
    expect(ports[3]!.hwCounters).toMatchObject({ duplicate_request: 41, local_ack_timeout_err: 131, out_of_sequence: 1, roce_adp_retrans: 99, roce_adp_retrans_to: 4, req_cqe_error: 3481, rx_read_requests: 175528982 });
  });
});

describe('rates', () => {
  it('turns port_*_data words into bytes per second and error counters into rates', () => {
    const [a] = parseInfinibandTree(H100);
    const next = new Map(H100);
    next.set('mlx5_0/ports/1/counters/port_rcv_data', String(230539874932483 + 1e9));
    next.set('mlx5_0/ports/1/counters/port_xmit_data', String(230442669431839 + 5e8));
    next.set('mlx5_0/ports/1/counters/symbol_error', '20');
    next.set('mlx5_0/ports/1/counters/link_downed', '1');
    next.set('mlx5_0/ports/1/hw_counters/roce_adp_retrans', '53');
    next.set('mlx5_0/ports/1/hw_counters/out_of_sequence', '10');
    const [b] = parseInfinibandTree(next);
    const r = deriveRdmaPortRates(a!, b!, 10);
    expect(r).toMatchObject({ receiveBytesPerSec: 4e8, transmitBytesPerSec: 2e8, symbolErrorsPerSec: 2, linkDownedPerSec: 0.1, retransmissionsPerSec: 5, outOfSequencePerSec: 1, receiveErrorsPerSec: 0 });
  });

  it('parses rates and coded states', () => {
    expect(parseRate('400 Gb/sec (4X NDR)')).toBe(400);
    expect(parseRate('2.5 Gb/sec (1X SDR)')).toBe(2.5);
    expect(parseRate('garbage')).toBeUndefined();
    expect(parseCodedState('1: DOWN')).toEqual({ code: 1, name: 'DOWN' });
  });
});

describe('ethtool -S', () => {
  const mlx5 = parseEthtoolStats(fixture('rdma/ethtool-S_mlx5_netdev-bpf-list_2024-06-19_kernel5.15.txt'));
  const cx4 = parseEthtoolStats(fixture('rdma/ethtool-S_mellanox_cx4lx_pause_grep_excerpt.txt'));

  it('reads the real mlx5 and ConnectX-4 Lx counters', () => {
    expect(Object.keys(mlx5)).toHaveLength(101);
    expect(mlx5).toMatchObject({ rx_discards_phy: 58591428329, tx_pause_ctrl_phy: 5745055, rx_out_of_buffer: 990473555, rx_bytes_phy: 6211329423080, rx0_xdp_tx_cqes: 87229139 });
    expect(cx4).toMatchObject({ tx_pause_ctrl_phy: 1266552, tx_global_pause_duration: 555665182, tx_pci_signal_integrity: 3 });
  });

  it('derives pause, discard and byte rates (phy counters first)', () => {
    const later = { ...mlx5, rx_bytes_phy: mlx5['rx_bytes_phy']! + 1e10, tx_pause_ctrl_phy: mlx5['tx_pause_ctrl_phy']! + 500, rx_discards_phy: mlx5['rx_discards_phy']! + 30 };
    // this NIC has no receive pause counter at all: absent, not 0
    expect(deriveNicRates(mlx5, later, 10)).toEqual({
      receiveBytesPerSec: 1e9, transmitBytesPerSec: 0, transmitPausePerSec: 50, receiveDiscardsPerSec: 3, receiveOutOfBufferPerSec: 0,
    });
    // PFC: per-priority pause counters add to the global ones
    expect(deriveNicRates({ rx_prio3_pause: 10, rx_global_pause: 5 }, { rx_prio3_pause: 30, rx_global_pause: 5 }, 2).receivePausePerSec).toBe(10);
  });
});

describe('robustness (fast-check)', () => {
  const entries = [...TTAR.entries()];
  it('never throws on mutated trees, random ethtool text and truncated ttar', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(entries.length - 1), fc.string({ maxLength: 30 }), fc.string({ maxLength: 20 }))), (edits) => {
      const tree = new Map(TTAR);
      for (const [i, path, value] of edits) tree.set(i % 2 === 0 ? entries[i]![0] : path, value);
      for (const p of parseInfinibandTree(tree)) {
        for (const v of Object.values(p.counters)) expect(Number.isFinite(v)).toBe(true);
      }
    }), { numRuns: 300 });
    const text = fixture('rdma/procfs_fixtures_sys_class_infiniband.ttar');
    fc.assert(fc.property(fc.nat(), fc.string({ maxLength: 200 }), (n, s) => {
      parseInfinibandTree(extractTtar(text.slice(0, n % text.length), 'fixtures/sys/class/infiniband'));
      parseEthtoolStats(s);
    }), { numRuns: 200 });
  });
});

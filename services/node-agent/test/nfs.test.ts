import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveNfsMountRates } from '../src/collectors/nfs/derive.js';
import { parseMountstats } from '../src/collectors/nfs/mountstats.js';
import { fixture } from './helpers/fixtures.js';

const PROCFS = fixture('nfs/procfs_fixtures_proc_26231_mountstats.txt');
const NODE_EXPORTER = fixture('nfs/node_exporter_fixtures_proc_10_mountstats.txt');
const GALLEY = fixture('nfs/nfsmountstats_testdata_proc_self_mountstats.txt');

describe('parseMountstats on real samples', () => {
  it('reads the procfs nfs4 mount (statvers 1.1, tcp) and skips other filesystems', () => {
    const mounts = parseMountstats(PROCFS);
    expect(mounts).toHaveLength(1);
    const m = mounts[0]!;
    expect(m).toMatchObject({ device: '192.168.1.1:/srv/test', mountpoint: '/mnt/nfs/test', fstype: 'nfs4', statvers: '1.1', ageSeconds: 13968 });
    expect(m.opts).toMatchObject({ vers: '4.0', proto: 'tcp', hard: true, timeo: '600' });
    expect(m.bytes).toMatchObject({ normalReadBytes: 1207640230, serverReadBytes: 1210214218, readPages: 295483 });
    expect(m.events['vfsopen']).toBe(1);
    expect(m.ops.get('READ')).toEqual({ op: 'READ', ops: 1298, transmissions: 1298, majorTimeouts: 0, bytesSent: 207680, bytesReceived: 1210292152, queueMs: 6, rttMs: 79386, executeMs: 79407 });
    expect(m.transport).toEqual({
      protocol: 'tcp', port: 832, bindCount: 0, connectCount: 1, connectTime: 0, idleTime: 11, sends: 6428, receives: 6428, badXids: 0,
      inflightSum: 12154, backlogSum: 0, maxSlots: 24, sendingSum: 26, pendingSum: 5726, extra: {},
    });
  });

  it('reads the wrapped 18446743919241604546 queue time as the signed value it stands for', () => {
    const access = parseMountstats(PROCFS)[0]!.ops.get('ACCESS')!;
    expect(access.queueMs).toBe(-154467947070);
    expect(access.ops).toBe(2927395007);
    expect(access.bytesSent).toBe(526931094212);
  });

  it('keeps duplicate mountpoints apart and reads the udp transport line', () => {
    const mounts = parseMountstats(NODE_EXPORTER);
    expect(mounts.map((m) => [m.mountpoint, m.fstype, m.transport?.protocol])).toEqual([
      ['/mnt/nfs/test', 'nfs4', 'tcp'], ['/mnt/nfs/test-dupe', 'nfs4', 'tcp'], ['/mnt/nfs/test-dupe', 'nfs', 'udp'],
    ]);
    expect(mounts[2]!.transport).toMatchObject({ port: 832, bindCount: 0, sends: 6428, receives: 6428, badXids: 0, inflightSum: 12154, backlogSum: 0, maxSlots: 24, sendingSum: 26, pendingSum: 5726 });
    expect(mounts[2]!.opts['proto']).toBe('udp');
  });

  it('reads 10 NFS mounts of 38 devices: v4.2 with errors column, v3, statvers 1.0, udp and rdma', () => {
    const mounts = parseMountstats(GALLEY);
    expect(mounts).toHaveLength(10);
    const docs = mounts[0]!;
    expect(docs).toMatchObject({ mountpoint: '/mnt/nfs1/docs', fstype: 'nfs4', statvers: '1.1' });
    expect(docs.ops.size).toBe(69);
    expect(docs.ops.get('OPEN')).toMatchObject({ ops: 916, errors: 374 });
    expect(docs.ops.get('SEQUENCE')).toMatchObject({ ops: 3962, transmissions: 3988, queueMs: 47272, errors: 29 });
    expect(docs.ops.get('READ_PLUS')).toMatchObject({ ops: 0 });
    expect(docs.transport).toMatchObject({ protocol: 'tcp', connectCount: 62, sends: 35130, receives: 35097, badXids: 3, inflightSum: 889722, maxSlots: 31 });
    const v3 = mounts.find((m) => m.mountpoint === '/mailhome6')!;
    expect(v3.ops.get('READ')!.errors).toBeUndefined();
    expect(v3.bytes['serverReadBytes']).toBe(93848122978);
    expect(v3.transport).toMatchObject({ sends: 1013715537, inflightSum: 18247684089, maxSlots: 1417, pendingSum: 15660436504 });
    const old = mounts.find((m) => m.mountpoint === '/fakehomestatver1')!;
    expect(old.statvers).toBe('1.0');
    expect(old.device).toBe('10.0.47.9:/fakehomestatver1');
    expect(old.transport?.maxSlots).toBeUndefined();
    expect(old.transport?.backlogSum).toBe(0);
    const udp = mounts.find((m) => m.mountpoint === '/mailhome5udp')!;
    expect(udp.transport).toMatchObject({ protocol: 'udp', port: 840, bindCount: 1, sends: 1013715537, receives: 1013715535, badXids: 2, inflightSum: 18247684089, backlogSum: 0 });
    const rdma = mounts.find((m) => m.mountpoint === '/mailhome5rdma')!;
    expect(rdma.transport).toMatchObject({ protocol: 'rdma', port: 741, sends: 1013715537, badXids: 2, inflightSum: 0, backlogSum: 101371553 });
    expect(rdma.transport!.extra).toMatchObject({ read_chunks: 101371553, write_chunks: 101371550, reply_chunks: 60, total_rdma_req: 61, failed_marshal: 0 });
    expect(rdma.transport!.maxSlots).toBeUndefined();
  });
});

describe('deriveNfsMountRates', () => {
  // Ten seconds after the procfs sample: 100 READs of 1 MiB, 4 retransmissions, 1 major
  // timeout, the ACCESS queue sum still "negative" but advancing, and the transport's sums.
  const later = PROCFS
    .replace('READ: 1298 1298 0 207680 1210292152 6 79386 79407', 'READ: 1398 1402 1 223680 1315149752 16 80386 80457')
    .replace('ACCESS: 2927395007 2927394995 0 526931094212 362996810236 18446743919241604546 1667369447 1953587717',
      'ACCESS: 2927395107 2927395095 0 526931114212 362996830236 18446743919241614546 1667370447 1953588817')
    .replace('xprt:\ttcp 832 0 1 0 11 6428 6428 0 12154 0 24 26 5726', 'xprt:\ttcp 832 0 1 0 11 6632 6628 0 13786 612 24 26 5726')
    .replace('bytes:\t1207640230 0 0 0 1210214218 0 295483 0', 'bytes:\t1312497830 0 0 0 1315071818 0 321083 0');

  it('turns two snapshots into throughput, op rates, average times and transport use', () => {
    const [a] = parseMountstats(PROCFS);
    const [b] = parseMountstats(later);
    const r = deriveNfsMountRates(a!, b!, 10);
    expect(r.readBytesPerSec).toBe(10485760);
    expect(r.writeBytesPerSec).toBe(0);
    expect(r.opsPerSec).toBe(20); // 100 READ + 100 ACCESS
    expect(r.retransPerSec).toBeCloseTo(0.4);
    expect(r.majorTimeoutsPerSec).toBeCloseTo(0.1);
    // (10 READ + 10000 ACCESS) ms of queueing over 200 ops
    expect(r.avgQueueMs).toBeCloseTo(50.05);
    expect(r.avgRttMs).toBeCloseTo((1000 + 1000) / 200);
    expect(r.backlogQueueLength).toBeCloseTo(3); // 612 / 204 sends
    expect(r.inflightRequests).toBeCloseTo(8); // 1632 / 204
    expect(r.slotTableUtilization).toBeCloseTo(8 / 128);
    const access = r.ops.find((o) => o.op === 'ACCESS')!;
    expect(access).toMatchObject({ opsPerSec: 10, avgQueueMs: 100, avgRttMs: 10, avgExecuteMs: 11 });
    expect(r.ops.find((o) => o.op === 'READ')).toMatchObject({ opsPerSec: 10, retransPerSec: 0.4, avgQueueMs: 0.1, bytesReceivedPerSec: 10485760 });
  });

  it('uses the configured slot table size and reports nothing for a zero interval', () => {
    const [a] = parseMountstats(PROCFS);
    const [b] = parseMountstats(later);
    expect(deriveNfsMountRates(a!, b!, 10, { slotTableSize: { tcp: 16 } }).slotTableUtilization).toBeCloseTo(0.5);
    expect(deriveNfsMountRates(a!, b!, 0)).toEqual({ ops: [] });
  });

  it('treats a remount (counters went down) as a restart from zero', () => {
    const [a] = parseMountstats(later);
    const [b] = parseMountstats(PROCFS);
    const r = deriveNfsMountRates(a!, b!, 10);
    expect(r.readBytesPerSec).toBe(121021421.8);
    expect(Number.isFinite(r.opsPerSec)).toBe(true);
  });
});

describe('robustness (fast-check)', () => {
  const mutate = (s: string) => fc.tuple(fc.nat(), fc.string({ maxLength: 16 }), fc.nat()).map(([at, ins, del]) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + ins + s.slice(i + (del % 64));
  });
  it('never throws on random text, mutations and truncations, and rates stay finite', () => {
    for (const src of [PROCFS, NODE_EXPORTER, GALLEY.slice(0, 6000)]) {
      for (const arb of [fc.string({ maxLength: 500 }), mutate(src), fc.nat().map((n) => src.slice(0, n % (src.length + 1)))]) {
        fc.assert(fc.property(arb, (text) => {
          const a = parseMountstats(text);
          const b = parseMountstats(src);
          for (const m of a) {
            const other = b.find((x) => x.mountpoint === m.mountpoint);
            if (!other) continue;
            const r = deriveNfsMountRates(m, other, 5);
            for (const v of Object.values(r)) if (typeof v === 'number') expect(Number.isFinite(v)).toBe(true);
          }
        }), { numRuns: 120 });
      }
    }
  });
});

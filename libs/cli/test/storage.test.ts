// `gantry storage show` rendering: pools, capacity, health, telemetry, leases and waiters.
import { describe, expect, it } from 'vitest';
import { StorageLeaseMode, type StorageTarget } from '@gantry/proto';
import { storageView } from '../src/commands/storage.js';

const now = new Date('2026-12-02T02:00:00Z');
const W = StorageLeaseMode.STORAGE_LEASE_MODE_WRITE;
const R = StorageLeaseMode.STORAGE_LEASE_MODE_READ;

const target: StorageTarget = {
  name: 'ckpt', mountPrefix: '/mnt/ckpt', serverExport: 'nfs1:/export/ckpt',
  writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9, rpcSlots: 128, leaseTtlMs: 30_000, degraded: true,
  writePool: { mode: W, limit: 2, min: 1, max: 64, perNode: 1, leases: 2, waiters: 1, reason: 'decrease: target degraded (health), cap 16', updatedAt: now },
  readPool: { mode: R, limit: 48, min: 16, max: 480, perNode: 0, leases: 0, waiters: 0, reason: 'hold: pool not the bottleneck', updatedAt: now },
  telemetry: { nodes: 4, backlogQueueLength: 12.5, avgRttMs: 31.2, slotTableUtilization: 0.97, readBytesPerSecond: 0, writeBytesPerSecond: 41e9, observedAt: new Date(now.getTime() - 4_000) },
  leases: [{ id: 'w:j-1:1:0', target: 'ckpt', mode: W, holder: { jobId: 'j-1', attempt: 1, rank: 0, node: 'gpu-7' }, acquiredAt: now, expiresAt: new Date(now.getTime() + 27_000) }],
  waiters: [{ holder: { jobId: 'j-2', attempt: 3, rank: 5, node: '' }, mode: W, since: new Date(now.getTime() - 2_000), position: 0 }],
};

describe('storageView', () => {
  it('shows capacity, both pools with the controller decision, telemetry, leases and the queue', () => {
    const out = storageView([target], now);
    expect(out).toContain('ckpt  /mnt/ckpt  (nfs1:/export/ckpt)  DEGRADED (health: shared storage fault)');
    expect(out).toContain('capacity   write 250 GB/s, read 700 GB/s, 128 RPC slots per client, lease TTL 30s');
    expect(out).toContain('write      2/2 leased (min 1, max 64, 1 per node), 1 waiting; decrease: target degraded (health), cap 16');
    expect(out).toContain('telemetry  4 nodes, backlog 12.5, RTT 31.2 ms, slots 97% used, write 41 GB/s, read 0.0 GB/s (4s ago)');
    expect(out).toMatch(/w:j-1:1:0\s+write\s+gpu-7\s+in 27s/);
    expect(out).toMatch(/0\s+j-2\s+3\s+5\s+write\s+2s ago/);
  });
  it('says when nothing is configured', () => {
    expect(storageView([], now)).toMatch(/no storage targets configured/);
  });
});

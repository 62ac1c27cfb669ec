// The real backend's readers, without a GPU: a stand-in nvidia-smi script that replays the
// real capture (and rejects a field like an old driver would), a regular file standing in
// for /dev/kmsg, and the benchmark's cycle.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchCollectCycle } from '../bench/collect-cycle.js';
import { queryGpuCsv } from '../src/collectors/gpu/reader.js';
import { parseSnapshot, readRaw } from '../src/collectors/snapshot.js';
import { followKmsg } from '../src/collectors/xid/reader.js';
import { detectBackend, NvidiaSmiBackend } from '../src/device/nvidia-smi.js';
import { fixture, FIXTURES } from './helpers/fixtures.js';
import { fakeNvidiaSmi } from './helpers/fake-nvidia-smi.js';

describe('nvidia-smi backend with a stand-in binary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-smi-'));
  const binary = fakeNvidiaSmi(dir);

  it('drops a field the driver rejects, retries with the legacy name, and parses', async () => {
    const r = await queryGpuCsv(['index', 'uuid', 'clocks_event_reasons.active', 'temperature.gpu'], { binary, timeoutMs: 10_000 });
    expect(r.fields).toEqual(['index', 'uuid', 'clocks_throttle_reasons.active', 'temperature.gpu']);
    expect(r.text.trim()).toBe('0, GPU-9b6c5236-63fa-edad-c3e6-063b1cf51ac7, 0x0000000000000001, 41');
  });

  it('fingerprints and reads one cycle through the shared parsers', async () => {
    const backend = new NvidiaSmiBackend({
      binary, mountstatsPath: `${FIXTURES}nfs/procfs_fixtures_proc_26231_mountstats.txt`,
      infinibandRoot: `${FIXTURES}rdma/gpud-sys-class-infiniband-h100.0`,
    });
    expect(await backend.fingerprint()).toEqual([
      { index: 0, uuid: 'GPU-9b6c5236-63fa-edad-c3e6-063b1cf51ac7', model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, pciBusId: '00000000:00:06.0' },
    ]);
    const snap = parseSnapshot(await readRaw(backend), Date.now());
    expect(snap.errors).toEqual([]);
    expect(snap.gpus[0]).toMatchObject({ temperatureGpuC: 41, clockEventReasons: ['gpu_idle'], pcieReplayCounter: 0, pcieLinkRecoveryCounter: 191 });
    expect(snap.nfs[0]!.ops.get('ACCESS')!.queueMs).toBe(-154467947070);
    expect(snap.rdma).toHaveLength(9);
  }, 30_000);

  /** One cycle's snapshot with the stand-in in a mode (a marker file it looks for). */
  async function snapshotWith(marker: 'no-pci' | 'gpu-lost') {
    const backend = new NvidiaSmiBackend({ binary, mountstatsPath: `${FIXTURES}nfs/procfs_fixtures_proc_26231_mountstats.txt`, infinibandRoot: `${FIXTURES}rdma/gpud-sys-class-infiniband-h100.0` });
    writeFileSync(join(dir, marker), '');
    try {
      return parseSnapshot(await readRaw(backend), Date.now());
    } finally {
      rmSync(join(dir, marker));
    }
  }

  it('reports PCIe error counters it cannot read as a collector error of their own; the GPUs are still read', async () => {
    const snap = await snapshotWith('no-pci');
    expect(snap.errors).toEqual([{ collector: 'gpu-pcie', message: expect.stringMatching(/^nvidia-smi pci -gErrCnt: .*\(Invalid combination of input arguments/) }]);
    expect(snap.gpus[0]).toMatchObject({ temperatureGpuC: 41 });
    expect(snap.gpus[0]!.pcieReplayCounter).toBeUndefined();
  }, 30_000);

  it('keeps the counters of the GPUs nvidia-smi pci still reaches when another fell off the bus', async () => {
    const snap = await snapshotWith('gpu-lost');
    expect(snap.errors).toEqual([]);
    expect(snap.gpus[0]).toMatchObject({ pcieReplayCounter: 0, pcieLinkRecoveryCounter: 191 });
  }, 30_000);

  it('times out a hung nvidia-smi', async () => {
    const hung = join(dir, 'hung-smi');
    writeFileSync(hung, '#!/bin/sh\nsleep 30\n');
    chmodSync(hung, 0o755);
    await expect(queryGpuCsv(['index'], { binary: hung, timeoutMs: 200 })).rejects.toMatchObject({ name: 'NvidiaSmiError', timedOut: true });
  });

  it('falls back to the simulator when asked', async () => {
    expect((await detectBackend({ backend: 'simulated' })).kind).toBe('simulated');
  });
});

describe('kernel log reader', () => {
  it('yields kmsg records one line each (a regular file stands in for /dev/kmsg)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-kmsg-'));
    const path = join(dir, 'kmsg');
    // The capture lacks a final newline; a line is only yielded once complete (a regular file
    // may be read while a record is being appended).
    writeFileSync(path, `${fixture('xid/gpud_testdata_kmsg.2.peermem.log')}\n`);
    const ac = new AbortController();
    const lines: string[] = [];
    for await (const l of followKmsg({ kmsgPath: path, fromStart: true, pollMs: 10, signal: ac.signal })) {
      lines.push(l);
      if (lines.length === 8) ac.abort();
    }
    expect(lines[0]).toBe('6,3973,227996636,-;nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context, skipping further processing');
    expect(lines).toHaveLength(8);
  });
});

describe('collect-cycle benchmark', () => {
  it('runs full cycles over the realistic host', () => {
    const r = benchCollectCycle(5);
    expect(r.encodedBytes).toBeGreaterThan(5000);
    expect(r.msPerCycle).toBeGreaterThan(0);
    expect(r.allocatedBytesPerCycle).toBeGreaterThan(0);
  });
});

// GPU isolation through the real runner on a cgroup v1 host: device files like the driver's
// (character devices 195:N, made with mknod in a scratch folder) and the real devices
// controller. A rank assigned GPU 1 opens nvidia1 (ENXIO: allowed, but no driver behind this
// stand-in) and is refused nvidia0 and nvidia2 (EPERM from the cgroup), as the rank's user;
// the rank's cgroup is gone after it exits. Needs root and /sys/fs/cgroup/devices.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RankAssignment } from '@gantry/proto';
import { RankRunner } from '../../src/runner/rank-runner.js';
import { StateFile } from '../../src/runner/state-file.js';
import { GpuDeviceCgroups, splitDev } from '../../src/runner/gpu-devices.js';
import { RankUsers } from '../../src/runner/rank-user.js';

const ROOT = '/sys/fs/cgroup/devices';
const usable = process.getuid?.() === 0 && existsSync(join(ROOT, 'devices.deny'));
let devDir: string;

beforeAll(() => {
  if (!usable) return;
  devDir = mkdtempSync(join(tmpdir(), 'gantry-gpu-dev-'));
  chmodSync(devDir, 0o755);
  for (const i of [0, 1, 2, 3]) execFileSync('mknod', ['-m', '0666', join(devDir, `nvidia${i}`), 'c', '195', String(i)]);
  execFileSync('mknod', ['-m', '0666', join(devDir, 'nvidiactl'), 'c', '195', '255']);
});

describe('splitDev', () => {
  it('reads major and minor from a dev_t as Linux encodes it', () => {
    expect(splitDev((195 << 8) | 3)).toEqual({ major: 195, minor: 3 });
    // A minor above 255 sits in bits 20 and up.
    expect(splitDev((510 << 8) | 0x34 | (0x12 << 20))).toEqual({ major: 510, minor: 0x1234 });
  });
});

describe.skipIf(!usable)('per-rank devices cgroup (cgroup v1)', () => {
  it('finds the GPU device files, not nvidiactl', () => {
    expect(new GpuDeviceCgroups({ devDir }).gpuDevices()).toEqual([0, 1, 2, 3].map((i) => ({ index: i, major: 195, minor: i })));
  });

  it('a rank assigned GPU 1 can open nvidia1 and nvidiactl only, as its user, and its cgroup goes with it', async () => {
    const state = new StateFile(mkdtempSync(join(tmpdir(), 'gantry-gpu-state-')));
    chmodSync(state.dir, 0o755);
    const devices = new GpuDeviceCgroups({ devDir, parent: `gantry-test-${process.pid}` });
    const runner = new RankRunner(state, pino({ level: 'silent' }), { devices, users: new RankUsers({ user: 'nobody', tenants: {}, allowRoot: false }) });
    runner.start();
    // `cat` of a device: "Operation not permitted" when the cgroup denies it, "No such device or address" when allowed.
    const probe = ['nvidia0', 'nvidia1', 'nvidia2', 'nvidiactl'].map((d) => `cat ${join(devDir, d)} 2>&1 | sed 's/^cat: //'`).join('; ');
    const a: RankAssignment = {
      jobId: 'j-gpu', attempt: 1, rank: 0, command: ['sh', '-c', `${probe}; id -u; grep :devices: /proc/self/cgroup`], env: { GANTRY_TENANT: 't' },
      workingDir: '', gpuIndices: [1], runAsUser: '', stopGraceSeconds: 1, processes: [],
    };
    try {
      const done = new Promise<void>((resolve) => { runner.onChange = () => { if (runner.running().length === 0) resolve(); }; });
      expect(runner.assign(a)).toEqual({ ok: true, message: 'started' });
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('rank did not exit')), 20_000))]);
    } finally {
      runner.stopPolling();
    }
    const rec = new StateFile(state.dir).state.ranks['j-gpu:1:0']!;
    const out = readFileSync(join(rec.dir, 'stdout.log'), 'utf8').trim().split('\n');
    expect(out).toEqual([
      `${join(devDir, 'nvidia0')}: Operation not permitted`,
      `${join(devDir, 'nvidia1')}: No such device or address`,
      `${join(devDir, 'nvidia2')}: Operation not permitted`,
      `${join(devDir, 'nvidiactl')}: No such device or address`,
      '65534',
      expect.stringMatching(new RegExp(`:devices:/gantry-test-${process.pid}/j-gpu-1-0$`)),
    ]);
    expect(rec.exitCode).toBe(0);
    expect(existsSync(join(ROOT, `gantry-test-${process.pid}`, 'j-gpu-1-0'))).toBe(false);
    execFileSync('rmdir', [join(ROOT, `gantry-test-${process.pid}`)]);
  });

  it('detect says why isolation is off', () => {
    expect(GpuDeviceCgroups.detect({ devDir: '/nonexistent' }).reason).toMatch(/no GPU device files/);
    expect(GpuDeviceCgroups.detect({ cgroupRoot: '/nonexistent' }).reason).toMatch(/no cgroup v1 devices controller .*eBPF/);
    expect(GpuDeviceCgroups.detect({ devDir }).isolation).toBeDefined();
  });
});

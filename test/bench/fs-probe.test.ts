import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeFilesystem, fileCreateCostUs, mountOf } from './fs-probe.js';

// Lines as the kernel writes them (proc(5)): optional fields before the ' - ' separator.
const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard',
  '25 22 0:21 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw',
  '31 22 7:0 / /mnt/jext4 rw,relatime shared:12 - ext4 /dev/loop0 rw',
  '32 22 7:1 / /mnt/with\\040space rw,relatime - xfs /dev/loop1 rw',
].join('\n');

describe('mountOf', () => {
  it('takes the longest mount point that holds the path', () => {
    expect(mountOf(MOUNTINFO, '/tmp/gantry-stack-1')).toEqual({ mountPoint: '/', fsType: 'ext4', source: '/dev/vda' });
    expect(mountOf(MOUNTINFO, '/mnt/jext4/gantry-stack-1')).toEqual({ mountPoint: '/mnt/jext4', fsType: 'ext4', source: '/dev/loop0' });
    expect(mountOf(MOUNTINFO, '/dev/shm')?.fsType).toBe('tmpfs');
  });

  it('does not take a mount point that is only a prefix of a folder name', () => {
    expect(mountOf(MOUNTINFO, '/mnt/jext4x/a')?.mountPoint).toBe('/');
  });

  it('reads octal escapes in mount points', () => {
    expect(mountOf(MOUNTINFO, '/mnt/with space/a')).toEqual({ mountPoint: '/mnt/with space', fsType: 'xfs', source: '/dev/loop1' });
  });

  it('answers nothing without a mount that holds the path', () => {
    expect(mountOf(MOUNTINFO.split('\n').slice(1).join('\n'), '/tmp/x')).toBeUndefined();
  });
});

describe('probes of this machine', () => {
  it('names the file system of a folder and measures a file creation there', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-probe-test-'));
    expect(describeFilesystem(dir)).toMatch(/^\S.* on \S+$|^an unknown file system$/);
    try {
      expect(fileCreateCostUs(dir, 20)).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

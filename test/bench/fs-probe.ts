// What a benchmark's stack folder sits on, and what creating a file costs there. Each trivial
// job's rank creates four (its folder, stdout.log, stderr.log, the wrapper's exit file), and
// that cost is the kernel's, not Gantry's: on this project's 2-core VMs the root file system is
// ext4 without a journal, where every inode allocation first skips each inode freed in the last
// 60 s (300 s while its inode-table block is not yet written back; fs/ext4/ialloc.c,
// recently_deleted), so a file costs 0.5-0.7 ms of CPU after a test run has deleted thousands,
// against about 21 us on a journaled ext4 (mkfs.ext4's default) on the same machine. The
// benchmarks print both facts so a figure can be read with its file system.
import { closeSync, mkdtempSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface Mount {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** The mount (from /proc/self/mountinfo's text) whose mount point is the longest prefix of `path`. */
export function mountOf(mountinfo: string, path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields] - fstype source super-options
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = unescapeOctal(left.split(' ')[4] ?? '');
    const [fsType = '', source = ''] = right.split(' ');
    const inside = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    if (inside && mountPoint.length >= (best?.mountPoint.length ?? -1)) best = { mountPoint, fsType, source: unescapeOctal(source) };
  }
  return best;
}

/** mountinfo writes space, tab, newline and backslash in paths as \ooo. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** "ext4 without a journal on /dev/vda"; ext4's journal is read from /sys/fs/ext4/<device>/journal_task. */
export function describeFilesystem(dir: string): string {
  let mount: Mount | undefined;
  try {
    mount = mountOf(readFileSync('/proc/self/mountinfo', 'utf8'), realpathSync(dir));
  } catch {
    return 'an unknown file system';
  }
  if (!mount) return 'an unknown file system';
  let kind = mount.fsType;
  if (mount.fsType === 'ext4') {
    try {
      const task = readFileSync(`/sys/fs/ext4/${basename(mount.source)}/journal_task`, 'utf8').trim();
      kind = task === '<none>' ? 'ext4 without a journal' : 'ext4 with a journal';
    } catch {
      // no sysfs entry (another kernel): say only ext4
    }
  }
  return `${kind} on ${mount.source}`;
}

/** CPU microseconds (user + kernel) per empty file created in a new folder under `dir`; the files stay. */
export function fileCreateCostUs(dir: string, files = 300): number {
  const probe = mkdtempSync(join(dir, 'fs-probe-'));
  const before = process.cpuUsage();
  for (let i = 0; i < files; i++) closeSync(openSync(join(probe, String(i)), 'w'));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / files;
}

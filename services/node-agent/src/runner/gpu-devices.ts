// GPU isolation beyond CUDA_VISIBLE_DEVICES, where the host allows it without eBPF: on a
// cgroup v1 host (devices controller mounted at /sys/fs/cgroup/devices), each rank runs in its
// own devices cgroup in which the GPU device files (/dev/nvidiaN) of every GPU not assigned to
// it are denied, so a rank that ignores CUDA_VISIBLE_DEVICES (or resets it) gets EPERM opening
// another job's GPU. Everything else (nvidiactl, nvidia-uvm, InfiniBand, disks) stays as it was.
//
// cgroup v2 has no devices files: its device rules are eBPF programs attached to the cgroup
// (what systemd's DeviceAllow= does). Gantry does not load eBPF itself; on a v2 host isolation
// is off and the agent says so at start (docs/security.md, GPU isolation).
//
// The rank's wrapper waits until the agent has moved it into its cgroup (wrapper.ts) before it
// starts the command, so nothing the command forks is left outside.
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface GpuDevice {
  /** N of /dev/nvidiaN (the driver's minor number, which is the GPU's index on common hosts). */
  index: number;
  major: number;
  minor: number;
}

export interface GpuDeviceOptions {
  /** Where the v1 devices hierarchy is mounted. */
  cgroupRoot?: string;
  /** Where the GPU device files are. */
  devDir?: string;
  /** The folder of Gantry's cgroups inside the hierarchy. */
  parent?: string;
}

/** Splits a Linux dev_t (new_encode_dev layout) into major and minor. */
export function splitDev(rdev: number): { major: number; minor: number } {
  return { major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00) };
}

export class GpuDeviceCgroups {
  readonly root: string;
  private readonly devDir: string;
  private readonly parent: string;

  constructor(opts: GpuDeviceOptions = {}) {
    this.root = opts.cgroupRoot ?? '/sys/fs/cgroup/devices';
    this.devDir = opts.devDir ?? '/dev';
    this.parent = opts.parent ?? 'gantry';
  }

  /**
   * Isolation on this host, or why not (for the agent's start-up log): needs the v1 devices
   * controller, root, and GPU device files.
   */
  static detect(opts: GpuDeviceOptions = {}): { isolation?: GpuDeviceCgroups; reason: string } {
    const d = new GpuDeviceCgroups(opts);
    if (!existsSync(join(d.root, 'devices.deny'))) {
      return { reason: `no cgroup v1 devices controller at ${d.root} (on cgroup v2 device rules need eBPF, which Gantry does not load): GPU isolation is CUDA_VISIBLE_DEVICES only` };
    }
    if (process.getuid?.() !== 0) return { reason: 'the agent is not root: GPU isolation is CUDA_VISIBLE_DEVICES only' };
    const gpus = d.gpuDevices();
    if (gpus.length === 0) return { reason: `no GPU device files (${d.devDir}/nvidiaN): nothing to isolate` };
    return { isolation: d, reason: `cgroup v1 devices: each rank is denied the ${gpus.length} GPU device files of ${d.devDir} except its own` };
  }

  /** /dev/nvidiaN character devices of the host. */
  gpuDevices(): GpuDevice[] {
    let names: string[];
    try {
      names = readdirSync(this.devDir);
    } catch {
      return [];
    }
    const out: GpuDevice[] = [];
    for (const n of names) {
      const m = /^nvidia(\d+)$/.exec(n);
      if (!m) continue;
      const st = statSync(join(this.devDir, n), { throwIfNoEntry: false });
      if (!st?.isCharacterDevice()) continue;
      out.push({ index: Number(m[1]), ...splitDev(st.rdev) });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /**
   * Makes the rank's cgroup (`name`: a path segment) with every GPU device but `gpus` denied;
   * returns its path inside the hierarchy (as /proc/PID/cgroup shows it).
   */
  create(name: string, gpus: readonly number[]): string {
    const rel = `/${this.parent}/${name}`;
    const dir = join(this.root, rel);
    mkdirSync(dir, { recursive: true });
    const allowed = new Set(gpus);
    for (const d of this.gpuDevices()) {
      if (!allowed.has(d.index)) appendFileSync(join(dir, 'devices.deny'), `c ${d.major}:${d.minor} rwm`);
    }
    return rel;
  }

  /** Moves a process (the rank's wrapper) into the cgroup `create` returned. */
  join(rel: string, pid: number): void {
    writeFileSync(join(this.root, rel, 'cgroup.procs'), String(pid));
  }

  /** Removes the rank's cgroup once its processes are gone; false while some remain. */
  remove(name: string): boolean {
    try {
      rmdirSync(join(this.root, this.parent, name));
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }
}

// The simulated host's kernel, on disk in the agent's state directory, so it outlives the
// agent like a real kernel does: a boot (id and time), the kernel log as a file of /dev/kmsg
// records ("prio,seq,usec,-;message", read by the same reader as /dev/kmsg), and what the
// hardware did this boot (GPUs that fell off the bus stay gone until a reboot). Both the
// running agent's simulated backend and `gantry-agent sim inject` (also while the agent is
// down) write to it, one at a time under a lock file.
import { randomUUID } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKernelLogLine } from '../../collectors/xid/kernel-log.js';
import { renderKmsg } from './render.js';

export interface SimBoot {
  bootId: string;
  /** Wall-clock ms of the simulated boot: kmsg timestamps count from it. */
  bootTimeMs: number;
}

/** What the simulated hardware looks like this boot (written by the backend, read by `sim inject`). */
export interface SimHostFile {
  /** Index → PCI bus id and UUID of every GPU the host was built with. */
  gpus: Array<{ index: number; pciBusId: string; uuid: string }>;
  /** GPUs that fell off the bus this boot. */
  lost: number[];
}

export function simKernelDir(stateDir: string): string {
  return join(stateDir, 'sim-kernel');
}

const LOCK_STALE_MS = 10_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export class SimKernelRing {
  readonly kmsgPath: string;
  private readonly bootPath: string;
  private readonly hostPath: string;
  private readonly lockPath: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.kmsgPath = join(dir, 'kmsg');
    this.bootPath = join(dir, 'boot.json');
    this.hostPath = join(dir, 'host.json');
    this.lockPath = join(dir, 'lock');
  }

  /** The current boot, created on first use. */
  boot(): SimBoot {
    return this.currentBoot() ?? this.locked(() => this.currentBoot() ?? this.newBoot());
  }

  private currentBoot(): SimBoot | undefined {
    try {
      const b = JSON.parse(readFileSync(this.bootPath, 'utf8')) as SimBoot;
      return typeof b.bootId === 'string' && Number.isFinite(b.bootTimeMs) ? b : undefined;
    } catch {
      return undefined;
    }
  }

  /** Reboots the simulated host: a new boot id, an empty kernel log, every GPU back. */
  reboot(nowMs = Date.now()): SimBoot {
    return this.locked(() => this.newBoot(nowMs));
  }

  private newBoot(nowMs = Date.now()): SimBoot {
    const boot: SimBoot = { bootId: randomUUID(), bootTimeMs: nowMs };
    writeAtomic(this.kmsgPath, '');
    const host = this.host();
    if (host) writeAtomic(this.hostPath, JSON.stringify({ ...host, lost: [] }));
    writeAtomic(this.bootPath, JSON.stringify(boot));
    return boot;
  }

  host(): SimHostFile | undefined {
    try {
      return JSON.parse(readFileSync(this.hostPath, 'utf8')) as SimHostFile;
    } catch {
      return undefined;
    }
  }

  /** Records the hardware (keeps this boot's lost GPUs unless `lost` is given). */
  writeHost(gpus: SimHostFile['gpus'], lost?: number[]): void {
    this.locked(() => writeAtomic(this.hostPath, JSON.stringify({ gpus, lost: lost ?? this.host()?.lost ?? [] })));
  }

  /** Marks a GPU fallen off the bus for the rest of this boot. */
  markLost(index: number): void {
    this.locked(() => {
      const host = this.host() ?? { gpus: [], lost: [] };
      if (!host.lost.includes(index)) writeAtomic(this.hostPath, JSON.stringify({ ...host, lost: [...host.lost, index].sort((a, b) => a - b) }));
    });
  }

  /** Appends one record with the next sequence number; returns it. */
  append(priority: number, message: string, nowMs = Date.now()): number {
    const boot = this.boot();
    return this.locked(() => {
      const seq = (this.lastSeq() ?? -1) + 1;
      appendFileSync(this.kmsgPath, `${renderKmsg(priority, seq, Math.max(0, nowMs - boot.bootTimeMs) / 1000, message)}\n`);
      return seq;
    });
  }

  /** Sequence number of the newest record, undefined when the log is empty. */
  lastSeq(): number | undefined {
    let size: number;
    try {
      size = statSync(this.kmsgPath).size;
    } catch {
      return undefined;
    }
    if (size === 0) return undefined;
    const len = Math.min(size, 16_384);
    const buf = Buffer.alloc(len);
    const fd = openSync(this.kmsgPath, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    const lines = buf.toString('utf8').split('\n').filter((l) => l.length > 0 && !l.startsWith(' '));
    for (let i = lines.length - 1; i >= 0; i--) {
      const seq = parseKernelLogLine(lines[i]!).seq;
      if (seq !== undefined) return seq;
    }
    return undefined;
  }

  private locked<T>(fn: () => T): T {
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        closeSync(openSync(this.lockPath, 'wx'));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        try {
          // A writer that died holding the lock: take it over.
          if (Date.now() - statSync(this.lockPath).mtimeMs > LOCK_STALE_MS) unlinkSync(this.lockPath);
        } catch {
          // released meanwhile
        }
        if (Date.now() > deadline) throw new Error(`simulated kernel log ${this.dir} is locked`);
        sleepSync(5);
      }
    }
    try {
      return fn();
    } finally {
      try {
        unlinkSync(this.lockPath);
      } catch {
        // already gone
      }
    }
  }
}

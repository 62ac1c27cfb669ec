// Every GPU the agent has seen this boot, by PCI bus id, kept in the state directory. An XID
// names a bus, not an index; the inventory maps one to the other. A GPU that fell off the bus
// is no longer in the inventory (nvidia-smi cannot reach it), so its XIDs, read from the
// backlog by an agent restarted after the fall, would map to no GPU. The GPUs of earlier
// inventories of the same boot still can.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizePciBusId, type GpuInventoryEntry } from '../pci.js';

export const KNOWN_GPUS_FILE = 'known-gpus.json';

interface KnownGpusFile {
  bootId: string;
  gpus: GpuInventoryEntry[];
}

export class KnownGpus {
  private readonly gpus = new Map<string, GpuInventoryEntry>();
  private bootId: string | undefined;

  constructor(private readonly stateDir: string, private readonly onError: (err: Error) => void = () => undefined) {}

  private get path(): string {
    return join(this.stateDir, KNOWN_GPUS_FILE);
  }

  /** Adds those persisted for this boot (none after a reboot: GPUs may have moved). */
  load(bootId: string): void {
    this.bootId = bootId;
    try {
      const f = JSON.parse(readFileSync(this.path, 'utf8')) as KnownGpusFile;
      if (f.bootId === bootId && Array.isArray(f.gpus)) for (const g of f.gpus) if (!this.has(g)) this.put(g);
    } catch {
      // none yet, or unreadable: the current inventory is all we know
    }
    this.save();
  }

  /** Adds (or updates) the GPUs of an inventory; saved when the boot is known. */
  add(inventory: readonly GpuInventoryEntry[]): void {
    for (const g of inventory) this.put(g);
    this.save();
  }

  list(): GpuInventoryEntry[] {
    return [...this.gpus.values()].sort((a, b) => a.index - b.index);
  }

  private key(g: GpuInventoryEntry): string {
    return normalizePciBusId(g.pciBusId) ?? `#${g.index}`;
  }

  private has(g: GpuInventoryEntry): boolean {
    return this.gpus.has(this.key(g));
  }

  private put(g: GpuInventoryEntry): void {
    this.gpus.set(this.key(g), g);
  }

  private save(): void {
    if (this.bootId === undefined) return;
    try {
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ bootId: this.bootId, gpus: this.list() } satisfies KnownGpusFile));
      renameSync(tmp, this.path);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}

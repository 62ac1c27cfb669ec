// PCI bus ids come in several spellings: nvidia-smi `00000000:18:00.0`, the kernel's
// `0000:18:00.0`, Xid lines `PCI:0000:18:00` (no function), DCGM `00000000:1A:00.0`.
// Everything that joins on a bus id goes through normalizePciBusId first.

const BUS_ID = /^(?:pci:)?(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.([0-7]))?$/i;

/** Canonical `dddddddd:bb:dd.f` in lower case, or undefined when the text is not a bus id. */
export function normalizePciBusId(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const m = BUS_ID.exec(text.trim());
  if (!m) return undefined;
  const domain = (m[1] ?? '0').toLowerCase().padStart(8, '0');
  const bus = m[2]!.toLowerCase().padStart(2, '0');
  const dev = m[3]!.toLowerCase().padStart(2, '0');
  return `${domain}:${bus}:${dev}.${m[4] ?? '0'}`;
}

export interface GpuInventoryEntry {
  index: number;
  uuid: string;
  model: string;
  memoryMiB: number;
  pciBusId: string;
}

/** Index of an inventory by normalised bus id. */
export class GpuInventory {
  private readonly byBus = new Map<string, GpuInventoryEntry>();
  private readonly byUuid = new Map<string, GpuInventoryEntry>();
  private readonly byIndex = new Map<number, GpuInventoryEntry>();

  constructor(readonly gpus: readonly GpuInventoryEntry[] = []) {
    for (const g of gpus) {
      const bus = normalizePciBusId(g.pciBusId);
      if (bus) this.byBus.set(bus, g);
      this.byUuid.set(g.uuid, g);
      this.byIndex.set(g.index, g);
    }
  }

  byPciBusId(busId: string | undefined): GpuInventoryEntry | undefined {
    const n = normalizePciBusId(busId);
    return n === undefined ? undefined : this.byBus.get(n);
  }

  byGpuUuid(uuid: string | undefined): GpuInventoryEntry | undefined {
    return uuid === undefined ? undefined : this.byUuid.get(uuid);
  }

  byGpuIndex(index: number | undefined): GpuInventoryEntry | undefined {
    return index === undefined ? undefined : this.byIndex.get(index);
  }
}

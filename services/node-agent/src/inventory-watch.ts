// Fingerprints the host's GPUs again every interval, not only at start: a GPU that falls off
// the bus (or is unbound, or pulled) leaves the inventory while the agent runs, and the
// scheduler must learn it even when no XID said so (the kernel log unreadable, the record
// overwritten). On a change the agent registers again with the new list.
import type { Logger } from 'pino';
import type { DeviceBackend, GpuInventoryEntry } from './device/index.js';

export interface InventoryChange {
  /** The inventory now. */
  inventory: GpuInventoryEntry[];
  gone: GpuInventoryEntry[];
  added: GpuInventoryEntry[];
}

const key = (g: GpuInventoryEntry) => `${g.index}/${g.uuid}`;

/** GPUs in one inventory and not the other, by index and UUID (a GPU swapped in place is both). */
export function diffInventory(before: readonly GpuInventoryEntry[], after: readonly GpuInventoryEntry[]): Omit<InventoryChange, 'inventory'> {
  const was = new Set(before.map(key));
  const is = new Set(after.map(key));
  return { gone: before.filter((g) => !is.has(key(g))), added: after.filter((g) => !was.has(key(g))) };
}

/** "GPU 3 (GPU-8f…, 00000000:5d:00.0) gone from the inventory", one line per GPU. */
export function describeInventoryChange(change: Omit<InventoryChange, 'inventory'>): string[] {
  const name = (g: GpuInventoryEntry) => `GPU ${g.index} (${[g.uuid, g.pciBusId].filter(Boolean).join(', ')})`;
  return [...change.gone.map((g) => `${name(g)} gone from the inventory`), ...change.added.map((g) => `${name(g)} added to the inventory`)];
}

export class InventoryWatch {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<InventoryChange | undefined> | undefined;
  private failing = false;

  constructor(
    private readonly backend: DeviceBackend,
    private current: GpuInventoryEntry[],
    private readonly intervalMs: number,
    private readonly onChange: (change: InventoryChange) => void | Promise<void>,
    private readonly log: Logger,
  ) {}

  get inventory(): readonly GpuInventoryEntry[] {
    return this.current;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * One fingerprint; the change when there is one. A failed query (nvidia-smi hung or broken)
   * keeps the last inventory: only an answer that lacks a GPU takes it away. One at a time.
   */
  check(): Promise<InventoryChange | undefined> {
    this.checking ??= this.checkOnce().finally(() => { this.checking = undefined; });
    return this.checking;
  }

  private async checkOnce(): Promise<InventoryChange | undefined> {
    let inventory: GpuInventoryEntry[];
    try {
      inventory = await this.backend.fingerprint();
    } catch (err) {
      if (!this.failing) this.log.warn({ err: (err as Error).message }, 'GPU inventory query failed; keeping the last inventory');
      this.failing = true;
      return undefined;
    }
    this.failing = false;
    const diff = diffInventory(this.current, inventory);
    if (diff.gone.length === 0 && diff.added.length === 0) return undefined;
    this.current = inventory;
    const change = { inventory, ...diff };
    this.log.warn({ gpus: inventory.length, changes: describeInventoryChange(diff) }, 'GPU inventory changed; registering again');
    try {
      await this.onChange(change);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not act on the GPU inventory change');
    }
    return change;
  }
}

// Watches the host: one telemetry batch per interval and every XID as soon as the kernel
// logs it, both through the report buffer to the control plane and to /metrics. XIDs are
// read from a persisted kmsg cursor (collectors/xid/kmsg-cursor.ts): those logged while the
// agent was down are reported after it starts, none twice. On the simulated backend it also
// takes injected faults from `gantry-agent sim inject`.
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from './collectors/prometheus.js';
import { GpuInventory, TelemetryCollector, TelemetryMetrics, XidLogParser, xidEventToProto, xidRecords } from './collectors/index.js';
import { KmsgCursorTracker, kmsgCursorPath } from './collectors/xid/kmsg-cursor.js';
import { KnownGpus } from './collectors/xid/known-gpus.js';
import type { KmsgMissed } from './collectors/xid/reader.js';
import { SimulatedBackend, type DeviceBackend, type Fault, type GpuInventoryEntry } from './device/index.js';
import type { HostReporter } from './reporting/host-reporter.js';
import type { ReportBuffer } from './reporting/report-buffer.js';

export function injectDir(stateDir: string): string {
  return join(stateDir, 'sim-inject');
}

export class HostTelemetry {
  private readonly collector: TelemetryCollector;
  private readonly metrics = new TelemetryMetrics();
  private readonly abort = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private readonly xidParser = new XidLogParser({ year: new Date().getFullYear() });
  /** Every GPU seen this boot: XIDs of a GPU that has since left the inventory still map to it. */
  private readonly knownGpus: KnownGpus;
  private cursor: KmsgCursorTracker | undefined;

  constructor(
    private readonly node: string,
    private readonly backend: DeviceBackend,
    private readonly reporter: HostReporter,
    private readonly buffer: ReportBuffer,
    private readonly intervalMs: number,
    private readonly stateDir: string,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.collector = new TelemetryCollector(backend, { node });
    this.knownGpus = new KnownGpus(stateDir, (err) => log.warn({ err: err.message }, 'could not save the known GPUs'));
    this.metrics.register(registry);
  }

  /** The GPU inventory now (at start, and after every change). */
  setInventory(inventory: readonly GpuInventoryEntry[]): void {
    this.knownGpus.add(inventory);
    this.xidParser.setInventory(new GpuInventory(this.knownGpus.list()));
  }

  start(): void {
    void this.collectOnce();
    this.timers.push(setInterval(() => void this.collectOnce(), this.intervalMs));
    void this.followXids();
    if (this.backend instanceof SimulatedBackend) {
      mkdirSync(injectDir(this.stateDir), { recursive: true });
      this.timers.push(setInterval(() => this.takeInjections(), 250));
    }
  }

  private async collectOnce(): Promise<void> {
    try {
      this.collector.droppedReports = this.buffer.dropped;
      const batch = await this.collector.collect();
      for (const e of batch.collectorErrors) this.log.debug({ collector: e.collector, err: e.message }, 'collector failed this cycle');
      this.metrics.update(batch);
      this.reporter.telemetry(batch);
    } catch (err) {
      // E.g. the disk holding the report buffer is full: skip this cycle, keep the agent up.
      this.log.warn({ err: (err as Error).message }, 'telemetry cycle failed');
    }
  }

  private async followXids(): Promise<void> {
    try {
      const boot = await this.backend.kernelBoot().catch(() => undefined);
      if (this.abort.signal.aborted) return;
      const cursor = boot && new KmsgCursorTracker(kmsgCursorPath(this.stateDir), boot.id, {
        onError: (err) => this.log.warn({ err: err.message }, 'could not save the kernel log cursor'),
      });
      this.cursor = cursor;
      if (boot) {
        this.knownGpus.load(boot.id);
        this.xidParser.setInventory(new GpuInventory(this.knownGpus.list()));
      }
      if (cursor) this.timers.push(setInterval(() => cursor.flush(), 1_000));
      this.log.info({ bootId: boot?.id, afterSeq: cursor?.afterSeq }, cursor
        ? cursor.afterSeq < 0 ? 'reading the kernel log from the oldest record of this boot' : 'reading the kernel log after the last record handled'
        : 'boot unknown: following new kernel log records only');
      const records = xidRecords(this.backend, {
        signal: this.abort.signal, parser: this.xidParser,
        ...(boot ? { bootTimeMs: boot.timeMs } : {}),
        ...(cursor ? { afterSeq: cursor.afterSeq, onMissed: (m: KmsgMissed) => this.missed(m) } : {}),
      });
      // Set when an XID could not be buffered: the cursor stays before it for the rest of this
      // run, so the next start reads it again (a repeat is better than a loss).
      let held = false;
      for await (const record of records) {
        let reported = false;
        for (const e of record.events) {
          const xid = xidEventToProto(e, this.node);
          this.log.warn({ xid: xid.xid, gpu: xid.gpuIndex, mnemonic: xid.mnemonic, severity: xid.severity, kmsgSeq: record.seq }, 'xid');
          this.metrics.recordXid(xid);
          try {
            this.reporter.xid(xid);
            reported = true;
          } catch (err) {
            held = true;
            this.log.error({ err: (err as Error).message, xid: xid.xid }, 'could not buffer an XID event; the kernel log cursor stays before it');
          }
        }
        // Only once the XIDs are in the report buffer (on disk) does the cursor pass the record.
        if (record.seq !== undefined && !held) cursor?.advance(record.seq, reported);
      }
    } catch (err) {
      if (!this.abort.signal.aborted) this.log.warn({ err: (err as Error).message }, 'kernel log follower stopped');
    } finally {
      this.cursor?.flush();
    }
  }

  private missed(m: KmsgMissed): void {
    const lost = m.nextSeq !== undefined && m.afterSeq !== undefined ? m.nextSeq - m.afterSeq - 1 : undefined;
    this.log.warn({ afterSeq: m.afterSeq, nextSeq: m.nextSeq, lost, how: m.how },
      'kernel log records were overwritten before the agent read them (ring buffer wrapped); XIDs among them are lost');
  }

  /** Faults dropped into the inject folder by `gantry-agent sim inject`, applied in name order. */
  private takeInjections(): void {
    const dir = injectDir(this.stateDir);
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
      const path = join(dir, f);
      try {
        const fault = JSON.parse(readFileSync(path, 'utf8')) as Fault;
        (this.backend as SimulatedBackend).inject(fault);
        this.log.info({ fault }, 'injected simulated fault');
      } catch (err) {
        this.log.warn({ file: f, err: (err as Error).message }, 'ignoring unreadable fault file');
      } finally {
        unlinkSync(path);
      }
    }
  }

  stop(): void {
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    this.cursor?.flush();
  }
}

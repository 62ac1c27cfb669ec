// Watches the host: one telemetry batch per interval and every XID as soon as the kernel
// logs it, both through the report buffer to the control plane and to /metrics. On the
// simulated backend it also takes injected faults from `gantry-agent sim inject`.
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from './collectors/prometheus.js';
import { TelemetryCollector, TelemetryMetrics, xidEventMessages } from './collectors/index.js';
import { SimulatedBackend, type DeviceBackend, type Fault } from './device/index.js';
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
    this.metrics.register(registry);
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
      for await (const xid of xidEventMessages(this.backend, this.node, this.abort.signal)) {
        this.log.warn({ xid: xid.xid, gpu: xid.gpuIndex, mnemonic: xid.mnemonic, severity: xid.severity }, 'xid');
        this.metrics.recordXid(xid);
        try {
          this.reporter.xid(xid);
        } catch (err) {
          this.log.error({ err: (err as Error).message, xid: xid.xid }, 'could not buffer an XID event');
        }
      }
    } catch (err) {
      if (!this.abort.signal.aborted) this.log.warn({ err: (err as Error).message }, 'kernel log follower stopped');
    }
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
  }
}

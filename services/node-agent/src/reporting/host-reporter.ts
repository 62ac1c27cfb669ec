// Sends the host's telemetry (every interval) and XID events (at once) through the report
// buffer to JetStream, in order. A publish failure stops the drain; the next attempt
// resumes at the same report, and the message id makes a repeat harmless. Each report is
// stamped with the agent process that made it when it is buffered, and nothing is sent before
// that process is registered: a report buffered by the previous process keeps its id, which
// the scheduler believes for reports stamped before this process started (docs/security.md).
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { TelemetryBatch, XidEvent } from '@gantry/proto';
import { encode, subjects } from '@gantry/bus';
import type { ReportBuffer } from './report-buffer.js';

export class HostReporter {
  private draining: Promise<void> | undefined;
  private again = false;
  /** Reports sent since start, by kind, for /metrics. */
  sent = { event: 0, telemetry: 0 };
  lastError = '';

  constructor(
    private readonly node: string,
    private readonly js: JetStreamClient,
    private readonly buffer: ReportBuffer,
    private readonly log: Logger,
    /** The agent process (NodeAgent): its instance id, and whether the scheduler has registered it. */
    private readonly agent?: { readonly instanceId: string; readonly isRegistered: boolean },
  ) {}

  telemetry(batch: TelemetryBatch): void {
    if (this.agent) batch.instanceId = this.agent.instanceId;
    this.buffer.append('telemetry', subjects.telemetry(this.node), `${this.node}.telemetry.${batch.time?.getTime() ?? Date.now()}.${batch.seq}`, encode(TelemetryBatch, batch));
    void this.drain();
  }

  xid(event: XidEvent): void {
    if (this.agent) event.instanceId = this.agent.instanceId;
    this.buffer.append('event', subjects.hostEvent(this.node), event.eventId, encode(XidEvent, event));
    void this.drain();
  }

  /** Sends everything buffered, oldest first; concurrent calls coalesce. */
  drain(): Promise<void> {
    if (this.agent && !this.agent.isRegistered) return Promise.resolve();
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      do {
        this.again = false;
        for (;;) {
          const batch = this.buffer.peek(64);
          if (batch.length === 0) break;
          try {
            for (const r of batch) {
              await this.js.publish(r.subject, r.data, { msgID: r.msgId, timeout: 5_000 });
              this.buffer.ack(r.file);
              this.sent[r.kind]++;
            }
            this.lastError = '';
          } catch (err) {
            if (this.lastError !== (err as Error).message) this.log.warn({ err: (err as Error).message, buffered: this.buffer.length }, 'reports buffered until NATS is reachable');
            this.lastError = (err as Error).message;
            return;
          }
        }
      } while (this.again);
    })().finally(() => { this.draining = undefined; });
    return this.draining;
  }
}

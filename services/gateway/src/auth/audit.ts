// Writes the audit trail of mutating calls to Redis (AuditStore) without holding up the call:
// appends are fire-and-forget, at most MAX_PENDING in flight (beyond that an entry is dropped,
// counted and logged), so a slow or failing Redis cannot stall or grow the gateway.
import type { Redis } from 'ioredis';
import { AuditStore, type AuditRecord } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { Counter, type Registry } from 'prom-client';

const MAX_PENDING = 1_000;

export class AuditLog {
  readonly store: AuditStore;
  private pending = 0;
  private readonly written: Counter<'outcome'>;

  constructor(redis: Redis, private readonly log: Logger, metrics: Registry, maxEntries: number) {
    this.store = new AuditStore(redis, maxEntries);
    this.written = new Counter({ name: 'gantry_gateway_audit_events_total', help: 'Audit events, by what became of them (written, dropped, failed)', labelNames: ['outcome'], registers: [metrics] });
  }

  record(r: AuditRecord): void {
    this.log.info({ audit: { ...r, time: r.time.toISOString() } }, 'audit');
    if (this.pending >= MAX_PENDING) {
      this.written.inc({ outcome: 'dropped' });
      return;
    }
    this.pending++;
    this.store.append(r).then(
      () => this.written.inc({ outcome: 'written' }),
      (err: unknown) => {
        this.written.inc({ outcome: 'failed' });
        this.log.warn({ err: (err as Error).message }, 'audit event not stored');
      },
    ).finally(() => { this.pending--; });
  }
}

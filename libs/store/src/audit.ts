// The audit trail: one entry per mutating call through the gateway (who, what, when, outcome),
// in a capped Redis stream (XADD MAXLEN ~), so a flood of calls cannot grow Redis without
// bound; the oldest entries go first. Read newest first with XREVRANGE.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';

export interface AuditRecord {
  /** Stream entry id (ms-seq); set when read. */
  id?: string;
  time: Date;
  subject: string;
  authMethod: string;
  method: string;
  target: string;
  tenant: string;
  outcome: string;
  message: string;
  peer: string;
}

const FIELDS = ['subject', 'authMethod', 'method', 'target', 'tenant', 'outcome', 'message', 'peer'] as const;
/** Each field is cut to this many characters: an entry is bounded whatever the caller sent. */
export const AUDIT_FIELD_CHARS = 512;

export interface AuditQuery {
  limit: number;
  /** Only entries older than this id. */
  beforeId?: string;
  subject?: string;
  /** Only methods ending with this. */
  method?: string;
}

export class AuditStore {
  constructor(private readonly redis: Redis, readonly maxEntries = 100_000) {}

  async append(r: AuditRecord): Promise<string> {
    const fields: string[] = ['time', String(r.time.getTime())];
    for (const f of FIELDS) fields.push(f, r[f].slice(0, AUDIT_FIELD_CHARS));
    return (await this.redis.xadd(keys.audit, 'MAXLEN', '~', String(this.maxEntries), '*', ...fields))!;
  }

  /** Newest first; scans at most 20 x limit entries to apply the filters. */
  async list(q: AuditQuery): Promise<{ records: AuditRecord[]; nextBeforeId: string }> {
    const out: AuditRecord[] = [];
    let end = q.beforeId ? `(${q.beforeId}` : '+';
    let scanned = 0;
    let last = '';
    while (out.length < q.limit && scanned < q.limit * 20) {
      const batch = await this.redis.xrevrange(keys.audit, end, '-', 'COUNT', Math.min(1000, q.limit * 4));
      if (batch.length === 0) { last = ''; break; }
      for (const [id, flat] of batch) {
        scanned++;
        last = id;
        const rec = toRecord(id, flat);
        if (q.subject && rec.subject !== q.subject) continue;
        if (q.method && !rec.method.endsWith(q.method)) continue;
        out.push(rec);
        if (out.length >= q.limit) break;
      }
      end = `(${last}`;
    }
    return { records: out, nextBeforeId: out.length >= q.limit || scanned >= q.limit * 20 ? last : '' };
  }
}

function toRecord(id: string, flat: string[]): AuditRecord {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
  const rec: AuditRecord = { id, time: new Date(Number(m.get('time') ?? 0)), subject: '', authMethod: '', method: '', target: '', tenant: '', outcome: '', message: '', peer: '' };
  for (const f of FIELDS) rec[f] = m.get(f) ?? '';
  return rec;
}

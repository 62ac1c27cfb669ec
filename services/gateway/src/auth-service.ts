// gantry.v1.AuthService: who the caller is (WhoAmI), and the audit trail (ListAuditEvents, admin).
import { AuthServiceService, type AuthServiceServer, type ListAuditEventsRequest } from '@gantry/proto';
import { invalidArgument, unavailable } from '@gantry/service-kit';
import type { Guard } from './auth/guard.js';
import type { AuditLog } from './auth/audit.js';

const AUTH = (m: string) => `gantry.v1.AuthService/${m}`;
const AUDIT_ID = /^\d{1,20}-\d{1,20}$/;

export function authService(guard: Guard, audit: AuditLog | undefined): AuthServiceServer {
  return {
    whoAmI: guard.unary(AUTH('WhoAmI'), async (_req, ctx) => {
      const p = ctx.principal;
      return { subject: p.subject, roles: [...p.roles], tenants: [...p.tenants], authMethod: p.method, expiresAt: p.expiresAt, authEnabled: guard.auth.enabled };
    }),
    listAuditEvents: guard.unary(AUTH('ListAuditEvents'), async (req: ListAuditEventsRequest) => {
      if (req.limit > 1000) throw invalidArgument(`limit must be between 0 and 1000, got ${req.limit}`);
      if (req.beforeId && !AUDIT_ID.test(req.beforeId)) throw invalidArgument('before_id must be an audit event id (ms-seq)');
      if (!audit) throw unavailable('the audit trail is not stored by this gateway');
      const { records, nextBeforeId } = await audit.store.list({ limit: req.limit || 100, beforeId: req.beforeId || undefined, subject: req.subject || undefined, method: req.method || undefined });
      return { events: records.map((r) => ({ ...r, id: r.id ?? '' })), nextBeforeId };
    }),
  };
}

export { AuthServiceService };

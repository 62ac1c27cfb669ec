// `gantry auth whoami`: who the gateway takes you for. `gantry admin audit`: the audit trail of
// mutating calls (admin only). Credentials come from --token / --cert --key, $GANTRY_TOKEN, or
// the client config file (~/.config/gantry/config.yaml; docs/security.md).
import type { Command } from 'commander';
import { ListAuditEventsResponse, WhoAmIResponse } from '@gantry/proto';
import { fields, formatTime, table } from '../format.js';
import { flagParser, parseInteger } from '../parse.js';
import type { Session } from '../session.js';

export function addAuthCommands(program: Command, session: Session): void {
  const auth = program.command('auth').description('authentication: who the gateway takes you for');
  auth
    .command('whoami')
    .description('print the principal the gateway authenticated: subject, roles, tenants, method')
    .action(async () => {
      const me = await session.gantry().whoAmI();
      if (session.json) {
        session.printJson(WhoAmIResponse.toJSON(me));
        return;
      }
      const method = me.authMethod === 'token' && me.expiresAt ? `token (expires ${formatTime(me.expiresAt, session.now()).replace(' ago)', ')')})` : me.authMethod;
      session.out(fields([
        ['subject', me.subject],
        ['auth', method],
        ['roles', me.roles.join(', ') || '-'],
        ['tenants', me.tenants.join(', ') || '-'],
      ]));
      if (!me.authEnabled) session.out('the gateway runs with GATEWAY_AUTH=off: every caller is an anonymous admin (docs/security.md)');
    });

  const admin = program.commands.find((c) => c.name() === 'admin') ?? program.command('admin');
  admin
    .command('audit')
    .description('the audit trail of mutating calls (who, what, when, outcome), newest first; admin only')
    .option('--limit <n>', 'at most this many events (1..1000)', flagParser((t) => parseInteger(t, { min: 1, max: 1000 })), 50)
    .option('--subject <who>', 'only this principal')
    .option('--method <name>', 'only methods ending with this, e.g. CancelJob')
    .option('--before <id>', 'only events older than this id (paging)')
    .action(async (o: { limit: number; subject?: string; method?: string; before?: string }) => {
      const res = await session.gantry().listAuditEvents({ limit: o.limit, subject: o.subject, method: o.method, beforeId: o.before });
      if (session.json) {
        session.printJson(ListAuditEventsResponse.toJSON(res));
        return;
      }
      const rows = res.events.map((e) => [
        e.time ? e.time.toISOString() : '-', e.subject, e.method.slice(e.method.lastIndexOf('/') + 1), e.target || '-', e.tenant || '-', e.outcome, e.message.slice(0, 80),
      ]);
      session.out(rows.length === 0 ? 'no audit events' : table(['TIME', 'SUBJECT', 'METHOD', 'TARGET', 'TENANT', 'OUTCOME', 'MESSAGE'], rows));
      if (res.nextBeforeId) session.out(`more: --before ${res.nextBeforeId}`);
    });
}

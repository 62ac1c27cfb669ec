import { describe, expect, it } from 'vitest';
import { agentInboxPrefix, busPermissions, busUserPublicKey, createBusUserKey, natsAuthorizationConfig, subjects } from '../src/index.js';

/** Whether a NATS subject matches a permission pattern (`*` one token, `>` the rest). */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const allowed = (patterns: string[], subject: string) => patterns.some((p) => matches(p, subject));

describe('bus permissions', () => {
  it('an agent publishes only its own node\'s subjects and reads only its own commands and inbox', () => {
    const p = busPermissions({ kind: 'agent', node: 'n1' });
    for (const s of [subjects.agentRegister('n1'), subjects.agentHeartbeat('n1'), subjects.rankEvent('n1'), subjects.hostEvent('n1'), subjects.telemetry('n1'), subjects.logs('j-1', 2, 3, 'n1'), subjects.checkpointReport('n1', 'j-1')]) expect(allowed(p.publish, s)).toBe(true);
    for (const s of [subjects.agentRegister('n2'), subjects.agentHeartbeat('n2'), subjects.rankEvent('n2'), subjects.hostEvent('n2'), subjects.telemetry('n2'), subjects.logs('j-1', 2, 3, 'n2'), subjects.checkpointReport('n2', 'j-1'), 'gantry.v1.checkpoint.report.j-1', subjects.agentCommand('n1'), subjects.jobEvent('j-1'), '$JS.API.STREAM.DELETE.GANTRY_EVENTS', '_INBOX.x']) expect(allowed(p.publish, s)).toBe(false);
    expect(allowed(p.subscribe, subjects.agentCommand('n1'))).toBe(true);
    expect(allowed(p.subscribe, `${agentInboxPrefix('n1')}.abc.1`)).toBe(true);
    for (const s of [subjects.agentCommand('n2'), `${agentInboxPrefix('n2')}.abc`, '_INBOX.abc', subjects.logsAll, subjects.agentHeartbeat('n2')]) expect(allowed(p.subscribe, s)).toBe(false);
    expect(p.allowResponses).toBe(true);
  });

  it('only the scheduler may publish commands', () => {
    for (const kind of ['gateway', 'checkpoint'] as const) expect(allowed(busPermissions({ kind }).publish, subjects.agentCommand('n1'))).toBe(false);
    expect(allowed(busPermissions({ kind: 'scheduler' }).publish, subjects.agentCommand('n1'))).toBe(true);
    expect(allowed(busPermissions({ kind: 'scheduler' }).publish, subjects.agentHeartbeat('n1'))).toBe(false);
  });

  it('renders an authorization block with every user by NKEY, and refuses what is not a public user key', () => {
    const a = createBusUserKey();
    expect(busUserPublicKey(a.seed)).toBe(a.nkey);
    const conf = natsAuthorizationConfig([{ nkey: a.nkey, role: { kind: 'agent', node: 'n1' } }, { nkey: createBusUserKey().nkey, role: { kind: 'scheduler' } }]);
    expect(conf).toContain(`nkey: "${a.nkey}"`);
    expect(conf).toContain('"gantry.v1.agent.heartbeat.n1"');
    expect(conf).toContain('allow_responses: true');
    expect(() => natsAuthorizationConfig([{ nkey: a.seed, role: { kind: 'gateway' } }])).toThrow(/gateway: .* is not a public user NKEY/);
    expect(() => natsAuthorizationConfig([])).toThrow(/at least one user/);
    expect(() => agentInboxPrefix('a.b')).toThrow(/not a valid subject token/);
  });
});

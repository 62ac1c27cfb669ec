// Who may publish and subscribe to what on the bus, and the nats-server `authorization` block
// that enforces it. One NKEY user per agent (held to its own node's subjects) and one per
// control-plane service. The local stack, the test harness and deploy/ all render their
// server configuration from here, so the permissions that are tested are the ones deployed.
import { createUser, fromSeed } from '@nats-io/nkeys';
import { streams, subjects, SUBJECT_TOKEN } from './subjects.js';

export type BusRole =
  | { kind: 'agent'; node: string }
  | { kind: 'scheduler' }
  | { kind: 'gateway' }
  | { kind: 'checkpoint' }
  /** Operators' tools and tests: everything (never given to a service). */
  | { kind: 'operator' };

export interface SubjectPermissions {
  publish: string[];
  subscribe: string[];
  /**
   * May publish a reply to a request it received (nats-server `allow_responses`): one reply
   * per request, to that request's reply subject only, so no inbox needs a publish grant.
   */
  allowResponses: boolean;
}

/** The JetStream API and acknowledgements, for the services that manage streams and consume. */
const JETSTREAM_CLIENT = ['$JS.API.>', '$JS.ACK.>', '$JS.FC.>'];

/**
 * The inbox prefix of an agent's connection (its requests' replies, JetStream publish acks):
 * its own, so it may not subscribe to another client's replies.
 */
export function agentInboxPrefix(node: string): string {
  if (!SUBJECT_TOKEN.test(node)) throw new Error(`node ${JSON.stringify(node.slice(0, 60))} is not a valid subject token`);
  return `_INBOX_${node}`;
}

function agentSubjects(node: string): string[] {
  return [
    subjects.agentRegister(node), subjects.agentHeartbeat(node), subjects.rankEvent(node), subjects.hostEvent(node),
    subjects.telemetry(node), subjects.logsOfNode(node), subjects.checkpointReportsOfNode(node),
  ];
}

export function busPermissions(role: BusRole): SubjectPermissions {
  switch (role.kind) {
    case 'agent':
      return {
        publish: agentSubjects(role.node),
        subscribe: [subjects.agentCommand(role.node), subjects.checkpointDelete(role.node), subjects.checkpointVerify(role.node), `${agentInboxPrefix(role.node)}.>`],
        allowResponses: true,
      };
    case 'scheduler':
      return {
        // Commands to agents: only the scheduler's user may publish them.
        publish: [subjects.agentCommandAll, subjects.schedulerKick, ...streams.events.subjects, ...JETSTREAM_CLIENT],
        subscribe: [subjects.agentRegisterAll, subjects.agentHeartbeatAll, subjects.schedulerKick, subjects.logsAll, '_INBOX.>'],
        allowResponses: true,
      };
    case 'gateway':
      return { publish: [...JETSTREAM_CLIENT], subscribe: ['_INBOX.>'], allowResponses: false };
    case 'checkpoint':
      return {
        publish: [subjects.checkpointDeleteAll, subjects.checkpointVerifyAll, ...JETSTREAM_CLIENT],
        subscribe: ['_INBOX.>'],
        allowResponses: false,
      };
    case 'operator':
      return { publish: ['>'], subscribe: ['>'], allowResponses: false };
  }
}

/** A short name for logs and file names: `agent-node-3`, `scheduler`. */
export function busRoleName(role: BusRole): string {
  return role.kind === 'agent' ? `agent-${role.node}` : role.kind;
}

export interface BusUser {
  /** The user's NKEY public key (`U…`); the seed stays with the user. */
  nkey: string;
  role: BusRole;
}

const PUBLIC_USER_NKEY = /^U[A-Z2-7]{55}$/;

/**
 * The nats-server `authorization { users = [...] }` block: every user by NKEY with its
 * permissions. A client with no key, or a key not listed, is refused at connect.
 */
export function natsAuthorizationConfig(users: BusUser[]): string {
  if (users.length === 0) throw new Error('an authorization block needs at least one user');
  const q = (s: string) => JSON.stringify(s);
  const list = (xs: string[]) => `[${xs.map(q).join(', ')}]`;
  const lines = users.map((u) => {
    if (!PUBLIC_USER_NKEY.test(u.nkey)) throw new Error(`${busRoleName(u.role)}: ${q(u.nkey.slice(0, 60))} is not a public user NKEY (U…, 56 characters)`);
    const p = busPermissions(u.role);
    return `    # ${busRoleName(u.role)}\n    { nkey: ${q(u.nkey)}, permissions: { publish: { allow: ${list(p.publish)} }, subscribe: { allow: ${list(p.subscribe)} }${p.allowResponses ? ', allow_responses: true' : ''} } }`;
  });
  return ['authorization {', '  users = [', lines.join(',\n'), '  ]', '}', ''].join('\n');
}

/** A new NKEY user: the seed (`SU…`, secret, for the client) and its public key (for the server). */
export function createBusUserKey(): { seed: string; nkey: string } {
  const kp = createUser();
  return { seed: new TextDecoder().decode(kp.getSeed()), nkey: kp.getPublicKey() };
}

/** The public key of a user seed, checking that it is one (`SU…`). */
export function busUserPublicKey(seed: string): string {
  const s = seed.trim();
  if (!s.startsWith('SU')) throw new Error('not an NKEY user seed (SU…)');
  return fromSeed(new TextEncoder().encode(s)).getPublicKey();
}

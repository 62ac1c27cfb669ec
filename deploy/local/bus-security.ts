// The bus credentials of a local stack or a test stack, made fresh at each start: an NKEY user
// per service and per agent, the nats-server authorisation that holds each to its subjects
// (rendered by libs/bus/src/nats-auth.ts, as for a real deployment), and the Ed25519 key pair
// the scheduler signs agent commands with. Files only; starting the servers is the caller's.
// A real cluster makes (and extends) the same files with `pnpm bus:keys` (bus-keys.ts, docs/security.md).
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busRoleName, busUserPublicKey, commandSigningKey, createBusUserKey, natsAuthorizationConfig, signCommand, type BusRole, type BusUser } from '@gantry/bus';
import type { AgentCommand } from '@gantry/proto';
import type { ServiceName } from './services.js';

export interface CommandKeyFiles {
  /** The scheduler's private key (COMMAND_SIGNING_KEY_FILE). */
  privateKeyFile: string;
  /** Its public key, which the agents trust (SCHEDULER_PUBLIC_KEY_FILE / schedulerPublicKeyFile). */
  publicKeyFile: string;
}

/**
 * The command signing key pair in `dir` as PEM files (the private one 0600): the existing one,
 * or a new one when there is none.
 */
export function writeCommandKeys(dir: string, name = 'command-signing'): CommandKeyFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const privateKeyFile = join(dir, `${name}.key`);
  const publicKeyFile = join(dir, `${name}.pub`);
  if (existsSync(privateKeyFile) && existsSync(publicKeyFile)) return { privateKeyFile, publicKeyFile };
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKeyFile, publicKeyFile };
}

function loadSigningKey(file: string) {
  return commandSigningKey(readFileSync(file, 'utf8'));
}

function serviceRole(kind: Exclude<ServiceName, 'node-agent'>): BusRole {
  return { kind };
}

export class BusSecurity {
  private readonly users = new Map<string, BusUser & { seedFile: string }>();
  readonly commandKeys: CommandKeyFiles;
  /** The nats-server configuration file holding the authorisation block (`-c` or `include`). */
  readonly natsAuthFile: string;

  /**
   * Keys for the services, the operator and `nodes`' agents in `dir`: the ones already there
   * (every agent with a seed file stays a user), new ones for the rest.
   */
  constructor(readonly dir: string, nodes: string[] = []) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.commandKeys = writeCommandKeys(dir);
    this.natsAuthFile = join(dir, 'nats-auth.conf');
    for (const role of [serviceRole('scheduler'), serviceRole('gateway'), serviceRole('checkpoint'), { kind: 'operator' } as const]) this.addUser(role);
    const known = readdirSync(dir).filter((f) => /^agent-.+\.nk$/.test(f)).map((f) => f.slice('agent-'.length, -'.nk'.length));
    for (const node of [...known, ...nodes]) this.addUser({ kind: 'agent', node });
    this.writeServerConfig();
  }

  private addUser(role: BusRole): BusUser & { seedFile: string } {
    const name = busRoleName(role);
    const existing = this.users.get(name);
    if (existing) return existing;
    const seedFile = join(this.dir, `${name}.nk`);
    let nkey: string;
    if (existsSync(seedFile)) {
      nkey = busUserPublicKey(readFileSync(seedFile, 'utf8'));
    } else {
      const made = createBusUserKey();
      nkey = made.nkey;
      writeFileSync(seedFile, `${made.seed}\n`, { mode: 0o600 });
      chmodSync(seedFile, 0o600);
    }
    const user = { nkey, role, seedFile };
    this.users.set(name, user);
    return user;
  }

  private writeServerConfig(): void {
    writeFileSync(this.natsAuthFile, natsAuthorizationConfig([...this.users.values()].map(({ nkey, role }) => ({ nkey, role }))));
  }

  /**
   * Adds an agent's user (a node not known at start) and rewrites the server configuration;
   * returns whether it was new, in which case the caller reloads nats-server (SIGHUP).
   */
  addAgent(node: string): boolean {
    if (this.users.has(busRoleName({ kind: 'agent', node }))) return false;
    this.addUser({ kind: 'agent', node });
    this.writeServerConfig();
    return true;
  }

  /** The seed file of a user (for a test's own connection: `natsAuthenticator(seedFile)`). */
  seedFile(role: BusRole): string {
    const u = this.users.get(busRoleName(role));
    if (!u) throw new Error(`no bus user ${busRoleName(role)}`);
    return u.seedFile;
  }

  /** A service's side of the command signing keys (the scheduler's private key, the agents' public one). */
  commandKeyEnv(kind: ServiceName): NodeJS.ProcessEnv {
    if (kind === 'node-agent') return { SCHEDULER_PUBLIC_KEY_FILE: this.commandKeys.publicKeyFile };
    return kind === 'scheduler' ? { COMMAND_SIGNING_KEY_FILE: this.commandKeys.privateKeyFile } : {};
  }

  /** A service's environment: its NATS credentials and its side of the command signing keys. */
  env(kind: ServiceName, node?: string): NodeJS.ProcessEnv {
    if (kind === 'node-agent') {
      if (!node) throw new Error('an agent\'s bus environment needs its node name');
      this.addAgent(node);
      return { NATS_CREDS_FILE: this.seedFile({ kind: 'agent', node }), ...this.commandKeyEnv(kind) };
    }
    return { NATS_CREDS_FILE: this.seedFile(serviceRole(kind)), ...this.commandKeyEnv(kind) };
  }

  /** A command as the scheduler sends it, signed with this stack's key (tests of the agents' checks). */
  signCommand(node: string, command: AgentCommand): Uint8Array {
    return signCommand(loadSigningKey(this.commandKeys.privateKeyFile), node, command);
  }
}

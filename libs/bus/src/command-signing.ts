// Agent commands are signed by the scheduler (Ed25519, node:crypto). NATS permissions already
// let only the scheduler's user publish commands; the signature is the second lock: an agent
// runs nothing a leaked NATS credential or a misconfigured server let through. The signature
// covers a domain tag, the target node and the encoded AgentCommand, so a command signed for
// one node is refused by every other. Replays to the same node are fenced by the epoch and are
// idempotent (an assignment already running, a stop already done).
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { AgentCommand, SignedAgentCommand } from '@gantry/proto';
import { decode, encode } from './codec.js';

const DOMAIN = 'gantry.v1.AgentCommand\0';
/** An encoded command larger than this is refused before any work (assignments are a few KB). */
export const MAX_SIGNED_COMMAND_BYTES = 1024 * 1024;

function signedBytes(node: string, command: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${DOMAIN}${node}\0`, 'utf8'), command]);
}

function ed25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? 'symmetric'} key, not Ed25519`);
  return key;
}

/** The scheduler's signing key from PEM (PKCS#8). */
export function commandSigningKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`not a PEM private key: ${(err as Error).message}`);
  }
  return ed25519(key, 'the command signing key');
}

/**
 * The public keys agents accept, from PEM text holding one or more SPKI public keys: during a
 * rotation agents trust the old and the new key (docs/security.md).
 */
export function commandVerifyKeys(pem: string): KeyObject[] {
  const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no PEM public key (-----BEGIN PUBLIC KEY-----) found');
  return blocks.map((b, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey(b);
    } catch (err) {
      throw new Error(`public key ${i + 1}: ${(err as Error).message}`);
    }
    return ed25519(key, `public key ${i + 1}`);
  });
}

/** The payload of a command subject: the command, its node and the signature. */
export function signCommand(key: KeyObject, node: string, command: AgentCommand): Uint8Array {
  const bytes = encode(AgentCommand, command);
  return encode(SignedAgentCommand, { command: Buffer.from(bytes), node, signature: sign(null, signedBytes(node, bytes), key) });
}

export class CommandRefused extends Error {
  override name = 'CommandRefused';
  constructor(readonly reason: 'malformed' | 'unsigned' | 'wrong-node' | 'bad-signature', message: string) {
    super(message);
  }
}

/**
 * The command in a command subject's payload, if it is signed for `node` by one of `keys`;
 * otherwise CommandRefused says why.
 */
export function verifyCommand(keys: readonly KeyObject[], node: string, data: Uint8Array): AgentCommand {
  if (data.length > MAX_SIGNED_COMMAND_BYTES) throw new CommandRefused('malformed', `command of ${data.length} bytes exceeds ${MAX_SIGNED_COMMAND_BYTES}`);
  let signed: SignedAgentCommand;
  try {
    signed = decode(SignedAgentCommand, data, 'SignedAgentCommand');
  } catch (err) {
    throw new CommandRefused('malformed', (err as Error).message);
  }
  if (signed.signature.length === 0 || signed.command.length === 0) throw new CommandRefused('unsigned', 'unsigned command refused');
  if (signed.node !== node) throw new CommandRefused('wrong-node', `command signed for node ${JSON.stringify(signed.node.slice(0, 64))}, not ${node}`);
  const message = signedBytes(node, signed.command);
  if (!keys.some((k) => verify(null, message, k, signed.signature))) throw new CommandRefused('bad-signature', 'command signature does not verify with any trusted scheduler key');
  try {
    return decode(AgentCommand, signed.command, 'AgentCommand');
  } catch (err) {
    throw new CommandRefused('malformed', (err as Error).message);
  }
}

// Agent commands are signed by the scheduler (Ed25519, node:crypto). NATS permissions already
// let only the scheduler's user publish commands; the signature is the second lock: an agent
// runs nothing a leaked NATS credential or a misconfigured server let through. The signature
// covers a domain tag, the target node and the encoded AgentCommand, so a command signed for
// one node is refused by every other. Replays to the same node are fenced by the epoch and are
// idempotent (an assignment already running, a stop already done).
//
// Commands sent together are signed as one batch, because an Ed25519 signature costs ~40 us
// and a scheduling pass sends thousands of commands: a Merkle tree over the commands, one
// signature over its root, each command with its path. A leaf is SHA-256(0x00 || the bytes a
// single command's signature covers: domain tag, node, command), so it binds the node exactly
// as a single signature does; an inner node is SHA-256(0x01 || left || right), so a leaf can
// never pass as an inner node nor the reverse; the signature covers a batch domain tag and the
// root, so it can never pass as a single command's signature. An odd node at the end of a
// level is promoted to the next level unchanged (no duplicated last leaf, so a tree has one
// shape per leaf count and no leaf has two paths). The path is at most 32 levels, each
// sibling exactly 32 bytes. A batch of one is signed as a single command (no path), the form
// agents older than batching verify.
import { createPrivateKey, createPublicKey, hash, sign, verify, type KeyObject } from 'node:crypto';
import { AgentCommand, SignedAgentCommand } from '@gantry/proto';
import { decode, encode } from './codec.js';

const DOMAIN = 'gantry.v1.AgentCommand\0';
const BATCH_DOMAIN = Buffer.from('gantry.v1.AgentCommandBatch\0', 'utf8');
const LEAF = Buffer.from([0x00]);
/** An encoded command larger than this is refused before any work (assignments are a few KB). */
export const MAX_SIGNED_COMMAND_BYTES = 1024 * 1024;
/** The longest batch path an agent accepts: 2^32 commands, far beyond any batch. */
export const MAX_BATCH_PATH = 32;
const HASH_BYTES = 32;

function signedBytes(node: string, command: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${DOMAIN}${node}\0`, 'utf8'), command]);
}

const DOMAIN_BYTES = Buffer.from(DOMAIN, 'utf8');

/** SHA-256(0x00 || signedBytes(node, command)), its input written once (a pass hashes a leaf per command). */
function leafHash(node: string, command: Uint8Array): Buffer {
  const nodeBytes = Buffer.byteLength(node, 'utf8');
  const input = Buffer.allocUnsafe(1 + DOMAIN_BYTES.length + nodeBytes + 1 + command.length);
  input[0] = LEAF[0]!;
  DOMAIN_BYTES.copy(input, 1);
  let at = 1 + DOMAIN_BYTES.length;
  at += input.write(node, at, 'utf8');
  input[at++] = 0;
  input.set(command, at);
  return hash('sha256', input, 'buffer');
}

// Reused: the hashing is synchronous, and a scheduling pass hashes thousands of inner nodes.
const innerInput = Buffer.alloc(1 + 2 * HASH_BYTES, 0x01);

function innerHash(left: Uint8Array, right: Uint8Array): Buffer {
  innerInput.set(left, 1);
  innerInput.set(right, 1 + HASH_BYTES);
  return hash('sha256', innerInput, 'buffer');
}

function batchSignedBytes(root: Buffer): Buffer {
  return Buffer.concat([BATCH_DOMAIN, root]);
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
  return signCommands(key, [{ node, command }])[0]!;
}

export interface NodeCommand {
  node: string;
  command: AgentCommand;
}

/**
 * The payloads of several command subjects, in order, with one signature for all: a Merkle
 * batch (see the top of this file); a single command is signed on its own, as signCommand.
 */
export function signCommands(key: KeyObject, commands: readonly NodeCommand[]): Uint8Array[] {
  if (commands.length === 0) return [];
  if (commands.length > 2 ** MAX_BATCH_PATH) throw new Error(`a batch of ${commands.length} commands exceeds 2^${MAX_BATCH_PATH}`);
  const encoded = commands.map((c) => asBuffer(encode(AgentCommand, c.command)));
  if (commands.length === 1) {
    const { node } = commands[0]!;
    return [encode(SignedAgentCommand, SignedAgentCommand.create({ command: encoded[0]!, node, signature: sign(null, signedBytes(node, encoded[0]!), key) }))];
  }
  const levels = merkleLevels(encoded.map((bytes, i) => leafHash(commands[i]!.node, bytes)));
  const signature = sign(null, batchSignedBytes(levels[levels.length - 1]![0]!), key);
  return encoded.map((bytes, i) => {
    const { path, left } = merklePath(levels, i);
    return encode(SignedAgentCommand, { command: bytes, node: commands[i]!.node, signature, batchPath: path, batchPathLeft: left });
  });
}

/** The encoder's bytes as a Buffer, without copying them. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Every level of the tree, leaves first, root (a level of one) last. */
function merkleLevels(leaves: Buffer[]): Buffer[][] {
  const levels = [leaves];
  for (let level = leaves; level.length > 1;) {
    const up: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) up.push(i + 1 < level.length ? innerHash(level[i]!, level[i + 1]!) : level[i]!);
    levels.push(up);
    level = up;
  }
  return levels;
}

/** The siblings of leaf `index` from the leaves up, concatenated, and which of them are left children. */
function merklePath(levels: Buffer[][], index: number): { path: Buffer; left: number } {
  const path: Buffer[] = [];
  let left = 0;
  let at = index;
  for (let l = 0; l < levels.length - 1; l++, at = Math.floor(at / 2)) {
    const level = levels[l]!;
    if (at % 2 === 1) {
      left |= 1 << path.length;
      path.push(level[at - 1]!);
    } else if (at + 1 < level.length) {
      path.push(level[at + 1]!);
    }
    // else: the odd last node, promoted unchanged; no sibling at this level.
  }
  return { path: Buffer.concat(path, path.length * HASH_BYTES), left: left >>> 0 };
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
  const message = signed.batchPath.length === 0 && signed.batchPathLeft === 0 ? signedBytes(node, signed.command) : batchSignedBytes(batchRoot(node, signed));
  if (!keys.some((k) => verify(null, message, k, signed.signature))) throw new CommandRefused('bad-signature', 'command signature does not verify with any trusted scheduler key');
  try {
    return decode(AgentCommand, signed.command, 'AgentCommand');
  } catch (err) {
    throw new CommandRefused('malformed', (err as Error).message);
  }
}

/** The root that `signed`'s path leads to from its own leaf (for `node`, the node checked). */
function batchRoot(node: string, signed: SignedAgentCommand): Buffer {
  const { batchPath: path, batchPathLeft: left } = signed;
  if (path.length % HASH_BYTES !== 0) throw new CommandRefused('malformed', `batch path of ${path.length} bytes is not whole ${HASH_BYTES}-byte hashes`);
  const levels = path.length / HASH_BYTES;
  if (levels === 0 || levels > MAX_BATCH_PATH) throw new CommandRefused('malformed', `batch path of ${levels} levels (1 to ${MAX_BATCH_PATH})`);
  // Bits beyond the path would be ignored: refused, so that a command has one encoding.
  if (levels < 32 && left >>> levels !== 0) throw new CommandRefused('malformed', `batch path side bits ${left} beyond its ${levels} levels`);
  let at = leafHash(node, signed.command);
  for (let i = 0; i < levels; i++) {
    const sibling = path.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
    at = (left >>> i) & 1 ? innerHash(sibling, at) : innerHash(at, sibling);
  }
  return at;
}

import { describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { AgentCommand, RankAssignment, SignedAgentCommand } from '@gantry/proto';
import { CommandRefused, commandSigningKey, commandVerifyKeys, encode, signCommand, signCommands, verifyCommand } from '../src/index.js';

const pair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, pub: publicKey.export({ type: 'spki', format: 'pem' }) as string };
};
const cmd = AgentCommand.create({ epoch: 3, command: { $case: 'assign', assign: RankAssignment.create({ jobId: 'j-1', attempt: 1, rank: 0, command: ['true'] }) } });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof CommandRefused ? err.reason : `not a refusal: ${(err as Error).message}`;
  }
  return 'accepted';
}

describe('command signing', () => {
  it('a command signed for a node verifies there, with any of the trusted keys (a rotation)', () => {
    const old = pair();
    const next = pair();
    const keys = commandVerifyKeys(old.pub + next.pub);
    expect(keys).toHaveLength(2);
    expect(verifyCommand(keys, 'n1', signCommand(old.privateKey, 'n1', cmd))).toEqual(cmd);
    expect(verifyCommand(keys, 'n1', signCommand(next.privateKey, 'n1', cmd))).toEqual(cmd);
  });

  it('refuses unsigned, foreign-key, other-node, tampered and garbage payloads, saying which', () => {
    const k = pair();
    const keys = commandVerifyKeys(k.pub);
    expect(refusal(() => verifyCommand(keys, 'n1', encode(AgentCommand, cmd)))).toBe('unsigned');
    expect(refusal(() => verifyCommand(keys, 'n1', signCommand(pair().privateKey, 'n1', cmd)))).toBe('bad-signature');
    expect(refusal(() => verifyCommand(keys, 'n2', signCommand(k.privateKey, 'n1', cmd)))).toBe('wrong-node');
    const signed = SignedAgentCommand.decode(signCommand(k.privateKey, 'n1', cmd));
    const other = encode(AgentCommand, { ...cmd, epoch: 4 });
    expect(refusal(() => verifyCommand(keys, 'n1', encode(SignedAgentCommand, { ...signed, command: Buffer.from(other) })))).toBe('bad-signature');
    expect(refusal(() => verifyCommand(keys, 'n1', new Uint8Array([0xff, 0xff, 0xff])))).toBe('malformed');
    expect(refusal(() => verifyCommand(keys, 'n1', new Uint8Array(2 * 1024 * 1024)))).toBe('malformed');
  });

  it('loads keys from PEM and refuses what is not an Ed25519 key', () => {
    const k = pair();
    expect(commandSigningKey(k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).asymmetricKeyType).toBe('ed25519');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => commandSigningKey(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).toThrow(/rsa key, not Ed25519/);
    expect(() => commandVerifyKeys(rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string)).toThrow(/public key 1 is a rsa key, not Ed25519/);
    expect(() => commandVerifyKeys('hello')).toThrow(/no PEM public key/);
    expect(() => commandSigningKey('hello')).toThrow(/not a PEM private key/);
  });
});

// The batch format, built here by hand: leaves SHA-256(0x00 || tag || node || 0 || command),
// inner nodes SHA-256(0x01 || left || right), an odd last node promoted, the signature over
// "gantry.v1.AgentCommandBatch\0" || root.
const sha = (...parts: Uint8Array[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest();
const leaf = (node: string, command: AgentCommand) => sha(Buffer.from([0]), Buffer.from(`gantry.v1.AgentCommand\0${node}\0`), encode(AgentCommand, command));
const inner = (l: Buffer, r: Buffer) => sha(Buffer.from([1]), l, r);
const path = (...siblings: Buffer[]) => Buffer.concat(siblings);
const signRoot = (key: KeyObject, root: Buffer) => sign(null, Buffer.concat([Buffer.from('gantry.v1.AgentCommandBatch\0'), root]), key);
const cmdFor = (i: number) => AgentCommand.create({ epoch: 3, command: { $case: 'assign', assign: RankAssignment.create({ jobId: `j-${i}`, attempt: 1, rank: 0, command: ['true'] }) } });
const batchOf = (n: number) => Array.from({ length: n }, (_, i) => ({ node: `n${i % 3}`, command: cmdFor(i) }));

describe('batch signing (one signature over a Merkle root, a path per command)', () => {
  const k = pair();
  const keys = commandVerifyKeys(k.pub);

  it('every command of batches of 1 to 33 verifies on its own node, with one signature per batch', () => {
    for (let n = 1; n <= 33; n++) {
      const batch = batchOf(n);
      const signed = signCommands(k.privateKey, batch);
      expect(signed).toHaveLength(n);
      signed.forEach((data, i) => expect(verifyCommand(keys, batch[i]!.node, data)).toEqual(batch[i]!.command));
      expect(new Set(signed.map((d) => SignedAgentCommand.decode(d).signature.toString('hex'))).size).toBe(1);
    }
  });

  it('a batch of one is the single form, byte for byte what agents older than batching verify', () => {
    const [one] = signCommands(k.privateKey, [{ node: 'n1', command: cmd }]);
    expect(Buffer.from(one!).equals(Buffer.from(signCommand(k.privateKey, 'n1', cmd)))).toBe(true);
    const decoded = SignedAgentCommand.decode(one!);
    expect(decoded.batchPath).toHaveLength(0);
    expect(encode(SignedAgentCommand, { command: decoded.command, node: decoded.node, signature: decoded.signature, batchPath: Buffer.alloc(0), batchPathLeft: 0 })).toEqual(one);
  });

  it('builds the documented tree: domain-separated leaves and inner nodes, the odd last node promoted', () => {
    const batch = batchOf(3);
    const [l0, l1, l2] = batch.map((c) => leaf(c.node, c.command));
    const root = inner(inner(l0!, l1!), l2!);
    const signed = signCommands(k.privateKey, batch).map((d) => SignedAgentCommand.decode(d));
    expect(signed[0]!.signature).toEqual(signRoot(k.privateKey, root)); // Ed25519 is deterministic
    expect(signed[0]!.batchPath).toEqual(path(l1!, l2!));
    expect(signed[0]!.batchPathLeft).toBe(0);
    expect(signed[1]!.batchPath).toEqual(path(l0!, l2!));
    expect(signed[1]!.batchPathLeft).toBe(0b01);
    // Promoted: no sibling at the leaves' level, so its path is one level shorter.
    expect(signed[2]!.batchPath).toEqual(path(inner(l0!, l1!)));
    expect(signed[2]!.batchPathLeft).toBe(0b1);
    // The duplicate-last shape (l2 paired with itself) is another tree, refused.
    expect(refusal(() => verifyCommand(keys, 'n2', encode(SignedAgentCommand, { ...signed[2]!, batchPath: path(l2!, inner(l0!, l1!)), batchPathLeft: 0b10 })))).toBe('bad-signature');
  });

  const four = () => {
    const batch = batchOf(4).map((c, i) => ({ ...c, node: `n${i}` }));
    return { batch, signed: signCommands(k.privateKey, batch).map((d) => SignedAgentCommand.decode(d)) };
  };

  it('refuses a batched command moved to another node, relabelled or not', () => {
    const { signed } = four();
    expect(refusal(() => verifyCommand(keys, 'n1', encode(SignedAgentCommand, signed[0]!)))).toBe('wrong-node');
    expect(refusal(() => verifyCommand(keys, 'n1', encode(SignedAgentCommand, { ...signed[0]!, node: 'n1' })))).toBe('bad-signature');
    // n1's own path with n0's command: the leaf is n0's command for n1, never signed.
    expect(refusal(() => verifyCommand(keys, 'n1', encode(SignedAgentCommand, { ...signed[1]!, command: signed[0]!.command })))).toBe('bad-signature');
  });

  it('refuses a path from another batch, a tampered sibling, swapped sides and a changed command', () => {
    const { signed } = four();
    const elsewhere = signCommands(k.privateKey, batchOf(4).map((c, i) => ({ ...c, node: `n${i}`, command: cmdFor(i + 100) }))).map((d) => SignedAgentCommand.decode(d));
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, batchPath: elsewhere[0]!.batchPath })))).toBe('bad-signature');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, signature: elsewhere[0]!.signature })))).toBe('bad-signature');
    const tampered = Buffer.from(signed[0]!.batchPath);
    tampered[32 + 5]! ^= 1;
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, batchPath: tampered })))).toBe('bad-signature');
    for (const bits of [0b01, 0b10, 0b11]) expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, batchPathLeft: bits })))).toBe('bad-signature');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, command: Buffer.from(encode(AgentCommand, { ...cmdFor(0), epoch: 4 })) })))).toBe('bad-signature');
    // Without a path the root's signature is checked as a single command's: refused.
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, batchPath: Buffer.alloc(0), batchPathLeft: 0 })))).toBe('bad-signature');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, batchPath: signed[0]!.batchPath.subarray(0, 32) })))).toBe('bad-signature');
  });

  it('refuses a leaf presented as an inner node and an inner node presented as a leaf', () => {
    const { batch, signed } = four();
    const [l0, l1, l2, l3] = batch.map((c) => leaf(c.node, c.command));
    // n0's path with the leaf l2 where the inner node over l2 and l3 belongs.
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, batchPath: path(l1!, l2!) })))).toBe('bad-signature');
    // A signed tree whose "leaf" for n0 was hashed as an inner node (0x01) over its bytes: an
    // agent hashes a command as a leaf (0x00), so it never reaches that root.
    const bytes = Buffer.concat([Buffer.from('gantry.v1.AgentCommand\0n0\0'), encode(AgentCommand, batch[0]!.command)]);
    const asInner = sha(Buffer.from([1]), bytes);
    const root = inner(inner(asInner, l1!), inner(l2!, l3!));
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, signature: signRoot(k.privateKey, root) })))).toBe('bad-signature');
    // The same tree with a proper leaf verifies: only the prefix differs.
    expect(verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...signed[0]!, signature: signRoot(k.privateKey, inner(inner(l0!, l1!), inner(l2!, l3!))) }))).toEqual(batch[0]!.command);
  });

  it('refuses malformed paths: too deep, not whole 32-byte hashes, side bits beyond the path', () => {
    const { signed } = four();
    const s = signed[0]!;
    const deep = Buffer.alloc(33 * 32);
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...s, batchPath: deep })))).toBe('malformed');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...s, batchPath: s.batchPath.subarray(0, 63) })))).toBe('malformed');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...s, batchPath: Buffer.concat([s.batchPath, Buffer.alloc(1)]) })))).toBe('malformed');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...s, batchPathLeft: 0b100 })))).toBe('malformed');
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...s, batchPath: Buffer.alloc(0), batchPathLeft: 1 })))).toBe('malformed');
    // 32 levels is the limit, not refused as malformed (the root just is not signed).
    expect(refusal(() => verifyCommand(keys, 'n0', encode(SignedAgentCommand, { ...s, batchPath: deep.subarray(32), batchPathLeft: 0xffffffff })))).toBe('bad-signature');
  });
});

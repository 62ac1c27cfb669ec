import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { AgentCommand, RankAssignment, SignedAgentCommand } from '@gantry/proto';
import { CommandRefused, commandSigningKey, commandVerifyKeys, encode, signCommand, verifyCommand } from '../src/index.js';

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

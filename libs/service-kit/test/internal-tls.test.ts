// Internal mutual TLS: the start-up checks of INTERNAL_TLS_* and a real gRPC server built with
// internalServerCredentials, called with the right certificate, one from another CA, none,
// and in plaintext.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevCerts, type DevCertFiles } from '../../../deploy/local/dev-certs.js';
import { ConfigError, loadConfig, commonEnv } from '../src/config.js';
import { internalChannelCredentials, internalChannelOptions, internalServerCredentials, internalTls, type InternalTls } from '../src/internal-tls.js';
import { startGrpcServer, type GrpcServer } from '../src/grpc-server.js';

let dir: string;
let good: DevCertFiles;
let other: DevCertFiles;
let server: GrpcServer;

const cfg = (f: DevCertFiles, name: 'scheduler' | 'client' = 'client') => ({ INTERNAL_TLS_CA_FILE: f.ca, INTERNAL_TLS_CERT_FILE: f.cert(name), INTERNAL_TLS_KEY_FILE: f.key(name) });

function problem(c: Parameters<typeof internalTls>[0]): string {
  try {
    internalTls(c);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

/** grpc.health.v1.Health/Check on the server, with the given credentials. */
function healthCheck(creds: grpc.ChannelCredentials, options: grpc.ChannelOptions = {}, address = `localhost:${server.port}`): Promise<{ ok: true } | { ok: false; code: number; details: string }> {
  const client = new grpc.Client(address, creds, options);
  return new Promise((resolve) => {
    client.makeUnaryRequest('/grpc.health.v1.Health/Check', () => Buffer.alloc(0), (b: Buffer) => b, {}, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err) => {
      client.close();
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true });
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gantry-internal-tls-'));
  good = ensureDevCerts(join(dir, 'good'));
  other = ensureDevCerts(join(dir, 'other'));
  const tls = internalTls(cfg(good, 'scheduler'))!;
  server = await startGrpcServer('127.0.0.1', 0, () => [], internalServerCredentials(tls));
});

afterAll(async () => {
  await server?.shutdown(1_000);
  rmSync(dir, { recursive: true, force: true });
});

describe('INTERNAL_TLS_* at start-up', () => {
  it('is off when none is set, and part of every service env', () => {
    expect(internalTls({})).toBeUndefined();
    const loaded = loadConfig(commonEnv, cfg(good));
    expect(internalTls(loaded)?.ca.toString()).toContain('BEGIN CERTIFICATE');
  });

  it('names the missing variable when only some are set', () => {
    expect(problem({ INTERNAL_TLS_CA_FILE: good.ca })).toBe('invalid configuration: INTERNAL_TLS_CERT_FILE: required when INTERNAL_TLS_CA_FILE is set (internal mutual TLS needs all three)');
    expect(problem({ INTERNAL_TLS_CERT_FILE: good.cert('client'), INTERNAL_TLS_KEY_FILE: good.key('client') })).toMatch(/^invalid configuration: INTERNAL_TLS_CA_FILE: required when INTERNAL_TLS_CERT_FILE and INTERNAL_TLS_KEY_FILE are set/);
    expect(problem({ INTERNAL_TLS_SERVER_NAME: 'scheduler' })).toMatch(/INTERNAL_TLS_SERVER_NAME: needs INTERNAL_TLS_CA_FILE/);
  });

  it('names the variable of an unreadable, unparsable, mismatched or foreign file', () => {
    expect(problem({ ...cfg(good), INTERNAL_TLS_CA_FILE: join(dir, 'nope.crt') })).toMatch(/^invalid configuration: INTERNAL_TLS_CA_FILE: cannot read .*nope\.crt: ENOENT/);
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
    expect(problem({ ...cfg(good), INTERNAL_TLS_CERT_FILE: join(dir, 'junk.pem') })).toMatch(/INTERNAL_TLS_CERT_FILE: .*junk\.pem is not a PEM certificate/);
    expect(problem({ ...cfg(good), INTERNAL_TLS_KEY_FILE: join(dir, 'junk.pem') })).toMatch(/INTERNAL_TLS_KEY_FILE: .*junk\.pem is not an unencrypted PEM private key/);
    expect(problem({ ...cfg(good), INTERNAL_TLS_KEY_FILE: good.key('scheduler') })).toMatch(/INTERNAL_TLS_KEY_FILE: .*scheduler\.key is not the key of .*client\.crt/);
    expect(problem({ ...cfg(good), INTERNAL_TLS_CA_FILE: good.cert('scheduler') })).toMatch(/INTERNAL_TLS_CA_FILE: .*scheduler\.crt is not a CA certificate/);
    // A certificate of another CA, whose subject even looks the same.
    expect(problem({ ...cfg(other), INTERNAL_TLS_CA_FILE: good.ca })).toMatch(/INTERNAL_TLS_CERT_FILE: .*other\/client\.crt \(CN=gantry client\) is not signed by the CA in .*good\/ca\.crt/);  });

  it('accepts a CA file with the old and the new CA during a rotation, in either order', async () => {
    const both = join(dir, 'both-ca.crt');
    writeFileSync(both, Buffer.concat([readFileSync(other.ca), readFileSync(good.ca)]));
    expect(internalTls({ ...cfg(good), INTERNAL_TLS_CA_FILE: both })).toBeDefined();
    expect(internalTls({ ...cfg(other), INTERNAL_TLS_CA_FILE: both })).toBeDefined();
    // A server trusting both answers a client of either CA.
    const rotating = await startGrpcServer('127.0.0.1', 0, () => [], internalServerCredentials(internalTls({ ...cfg(good, 'scheduler'), INTERNAL_TLS_CA_FILE: both })!));
    try {
      for (const f of [good, other]) {
        const client = internalTls({ ...cfg(f), INTERNAL_TLS_CA_FILE: both })!;
        expect(await healthCheck(internalChannelCredentials(client), {}, `localhost:${rotating.port}`)).toEqual({ ok: true });
      }
    } finally {
      await rotating.shutdown(1_000);
    }
    writeFileSync(join(dir, 'with-leaf.crt'), Buffer.concat([readFileSync(good.ca), readFileSync(good.cert('client'))]));
    expect(problem({ ...cfg(good), INTERNAL_TLS_CA_FILE: join(dir, 'with-leaf.crt') })).toMatch(/INTERNAL_TLS_CA_FILE: .*with-leaf\.crt is not a CA certificate/);
  });
});

describe('a server with internalServerCredentials', () => {
  const client = (): InternalTls => internalTls(cfg(good))!;

  it('answers a caller with a certificate of the internal CA', async () => {
    expect(await healthCheck(internalChannelCredentials(client()))).toEqual({ ok: true });
    // Dialled by IP with a shared name: the override names what the certificate must carry.
    const named = { ...client(), serverName: 'localhost' };
    expect(await healthCheck(internalChannelCredentials(named), internalChannelOptions(named), `127.0.0.1:${server.port}`)).toEqual({ ok: true });
    // Scheduler replicas as a list of IPs (round robin), as the gateway dials them.
    expect(await healthCheck(internalChannelCredentials(client()), {}, `ipv4:127.0.0.1:${server.port},127.0.0.1:${server.port}`)).toEqual({ ok: true });
    // The name override is checked: a name the certificate does not carry is refused.
    const wrong = { ...client(), serverName: 'scheduler.example.com' };
    expect(await healthCheck(internalChannelCredentials(wrong), internalChannelOptions(wrong))).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
  });

  it('refuses a caller whose certificate chains to another CA', async () => {
    const foreign = internalTls(cfg(other))!;
    // The caller trusts the server (it knows the real CA) but presents the other CA's certificate.
    const res = await healthCheck(grpc.credentials.createSsl(readFileSync(good.ca), foreign.key, foreign.cert));
    expect(res.ok).toBe(false);
    expect(res).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('refuses a caller without a certificate, and plaintext', async () => {
    expect(await healthCheck(grpc.credentials.createSsl(readFileSync(good.ca)))).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(await healthCheck(grpc.credentials.createInsecure())).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
  });

  it('is refused by a caller that does not trust its CA', async () => {
    const foreign = internalTls(cfg(other))!;
    expect(await healthCheck(internalChannelCredentials(foreign))).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
  });
});

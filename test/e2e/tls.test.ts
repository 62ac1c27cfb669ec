// The gateway over TLS and mutual TLS, with certificates made for the test by openssl.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GantryClient, GantryError } from '@gantry/sdk';
import { serviceCommand } from '../../deploy/local/services.js';
import { TestStack } from '../harness/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'gantry-tls-'));
const f = (name: string) => join(dir, name);

function makeCertificates(): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=gantry-test-ca');
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1', ...(who === 'server' ? ['-extfile', 'san.ext'] : []));
  }
}

let stack: TestStack;

beforeAll(async () => {
  makeCertificates();
  stack = await new TestStack({ agents: 1, env: { gateway: { TLS_CERT_FILE: f('server.crt'), TLS_KEY_FILE: f('server.key'), TLS_CLIENT_CA_FILE: f('ca.crt') } } }).start();
});

afterAll(async () => {
  await stack?.stop();
});

async function listNodes(options: ConstructorParameters<typeof GantryClient>[0]): Promise<string[] | GantryError> {
  const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 3_000, retry: false, ...options });
  try {
    return (await client.listNodes({})).nodes.map((n) => n.name);
  } catch (err) {
    return err as GantryError;
  } finally {
    client.close();
  }
}

describe('gateway TLS', () => {
  it('serves a client that trusts its CA and presents a certificate from it', async () => {
    expect(await listNodes({ tls: { ca: readFileSync(f('ca.crt')), cert: readFileSync(f('client.crt')), key: readFileSync(f('client.key')) } })).toEqual(['node-0']);
  });

  it('refuses plaintext clients and clients without a certificate', async () => {
    expect((await listNodes({})) as GantryError).toBeInstanceOf(GantryError);
    const noCert = await listNodes({ tls: { ca: readFileSync(f('ca.crt')) } });
    expect(noCert).toBeInstanceOf(GantryError);
    expect((noCert as GantryError).codeName).toBe('UNAVAILABLE');
  });

  it('refuses to start with half a TLS configuration, naming the missing variable', async () => {
    const { command, args, cwd } = serviceCommand('gateway');
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => execFile(command, args, { cwd, env: { ...process.env, TLS_CERT_FILE: f('server.crt'), METRICS_PORT: '0', GATEWAY_GRPC_PORT: '0' }, timeout: 20_000 }, (err, _o, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr })));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('TLS_KEY_FILE: required when TLS_CERT_FILE is set');
  });
});

// Authentication, roles, tenants, audit and limits at the gateway, against a real stack served
// over mutual TLS (certificates made by openssl) with real JWTs (ES256, signed with jose) and
// an auth policy file mapping certificate identities to roles.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { generateSigningKey, signToken, type Role, type SigningKey } from '@gantry/auth';
import { GantryClient, GantryError, type ClientOptions } from '@gantry/sdk';
import { REPO_ROOT, cliCommand, serviceCommand } from '../../deploy/local/services.js';
import { TestStack, eventually } from '../harness/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'gantry-auth-'));
const f = (name: string) => join(dir, name);
const ISSUER = 'https://issuer.test';

/** CA, server certificate for 127.0.0.1, and client certificates with the given SANs. */
function makeCertificates(clients: Record<string, string | undefined>): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=gantry-auth-test-ca');
  const sign = (who: string, san: string | undefined) => {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    if (san) writeFileSync(f(`${who}.ext`), `subjectAltName=${san}\n`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1', ...(san ? ['-extfile', `${who}.ext`] : []));
  };
  sign('server', 'IP:127.0.0.1');
  for (const [who, san] of Object.entries(clients)) sign(who, san);
}

let stack: TestStack;
let key: SigningKey;
const tokens: Record<string, string> = {};

const tlsOf = (who: string) => ({ ca: readFileSync(f('ca.crt')), cert: readFileSync(f(`${who}.crt`)), key: readFileSync(f(`${who}.key`)) });

/** A client with a bearer token (over the generic client certificate the mTLS transport requires). */
function as(tokenName: string, extra: ClientOptions = {}): GantryClient {
  return new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: false, configFile: false, tls: tlsOf('any'), token: tokens[tokenName], ...extra });
}

/** A client authenticated by its certificate alone. */
function asCert(who: string): GantryClient {
  return new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: false, configFile: false, tls: tlsOf(who) });
}

async function refusal(p: Promise<unknown>): Promise<GantryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GantryError) return err;
    throw err;
  }
  throw new Error('expected the call to be refused');
}

const clients: GantryClient[] = [];
const track = (c: GantryClient) => { clients.push(c); return c; };

beforeAll(async () => {
  makeCertificates({ any: 'URI:spiffe://gantry/client/any', carol: 'URI:spiffe://gantry/user/carol', olga: 'URI:spiffe://gantry/ops/olga', nosan: undefined });
  key = await generateSigningKey('test-key');
  writeFileSync(f('jwks.json'), JSON.stringify(key.jwks));
  writeFileSync(f('policy.yaml'), [
    'principals:',
    '  "spiffe://gantry/user/carol": { roles: [user], tenants: [alice] }',
    '  "spiffe://gantry/ops/olga": { roles: [operator], tenants: ["*"] }',
    'tenants:',
    '  alice: { priorityClasses: [low, normal, high] }',
    '  bob: { priorityClasses: [low] }',
    '',
  ].join('\n'));
  const mint = (subject: string, roles: Role[], tenants: string[], extra: { ttlSec?: number; audience?: string } = {}) => signToken(key, { subject, roles, tenants, issuer: ISSUER, ...extra });
  tokens['admin'] = await mint('root@example.com', ['admin'], []);
  tokens['alice'] = await mint('alice@example.com', ['user'], ['alice']);
  tokens['bob'] = await mint('bob@example.com', ['user'], ['bob']);
  tokens['ghost'] = await mint('ghost@example.com', ['user'], ['ghost']);
  tokens['flood'] = await mint('flood@example.com', ['user'], ['alice']);
  tokens['expired'] = await mint('late@example.com', ['user'], ['alice'], { ttlSec: -3600 });
  tokens['wrongAud'] = await mint('alice@example.com', ['user'], ['alice'], { audience: 'someone-else' });
  const other = await generateSigningKey('test-key'); // same kid, another key: a forged signature
  tokens['forged'] = await signToken(other, { subject: 'root@example.com', roles: ['admin'], issuer: ISSUER });
  stack = await new TestStack({
    agents: 0,
    env: {
      gateway: {
        TLS_CERT_FILE: f('server.crt'), TLS_KEY_FILE: f('server.key'), TLS_CLIENT_CA_FILE: f('ca.crt'),
        GATEWAY_AUTH: 'token,mtls', GATEWAY_JWT_KEYS_FILE: f('jwks.json'), GATEWAY_JWT_ISSUER: ISSUER, GATEWAY_AUTH_POLICY_FILE: f('policy.yaml'),
        GATEWAY_RATE_LIMIT: '20/40',
      },
    },
  }).start();
  await track(as('admin')).setSchedulingConfig({ tenants: { alice: { weight: 1 }, bob: { weight: 1 } } });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await stack?.stop();
});

describe('principals', () => {
  it('whoami: a bearer token gives its subject, roles and tenants; a certificate its SAN and the policy file grant', async () => {
    const me = await track(as('alice')).whoAmI();
    expect(me).toMatchObject({ subject: 'alice@example.com', roles: ['user'], tenants: ['alice'], authMethod: 'token', authEnabled: true });
    expect(me.expiresAt!.getTime()).toBeGreaterThan(Date.now());
    expect(await track(asCert('olga')).whoAmI()).toMatchObject({ subject: 'spiffe://gantry/ops/olga', roles: ['operator'], tenants: ['*'], authMethod: 'mtls' });
  });

  it('refuses bad tokens with UNAUTHENTICATED and the precise reason', async () => {
    const cases: [string, string][] = [['expired', 'expired at'], ['forged', 'bad signature'], ['wrongAud', 'wrong audience']];
    for (const [name, reason] of cases) {
      const err = await refusal(track(as(name)).listNodes());
      expect(err.codeName, name).toBe('UNAUTHENTICATED');
      expect(err.details, name).toContain(reason);
    }
    const garbage = await refusal(track(as('alice', { token: 'not-a-jwt' })).listNodes());
    expect([garbage.codeName, garbage.details]).toEqual(['UNAUTHENTICATED', 'bearer token is not a JWT (expected header.payload.signature)']);
    const noSan = await refusal(track(asCert('nosan')).listNodes());
    expect([noSan.codeName, noSan.details]).toEqual(['UNAUTHENTICATED', 'client certificate has no subjectAltName (URI, email or DNS) to identify it']);
    // A certificate without a grant is authenticated but has no role.
    const noRole = await refusal(track(asCert('any')).listNodes());
    expect(noRole.codeName).toBe('PERMISSION_DENIED');
    expect(noRole.details).toContain('spiffe://gantry/client/any has no role');
  });
});

describe('roles and tenants', () => {
  it('a user cannot set the scheduling config or operate nodes; an admin can set it', async () => {
    const alice = track(as('alice'));
    const err = await refusal(alice.setSchedulingConfig({ tenants: {} }));
    expect([err.codeName, err.details]).toEqual(['PERMISSION_DENIED', 'SetSchedulingConfig needs the admin role; alice@example.com has user']);
    expect((await refusal(alice.getSchedulingConfig())).codeName).toBe('PERMISSION_DENIED');
    const stored = await track(as('admin')).setSchedulingConfig({ tenants: { alice: { weight: 1 }, bob: { weight: 2 } } });
    expect((stored.config['tenants'] as Record<string, { weight: number }>)['bob']!.weight).toBe(2);
  });

  it('user B can neither see, cancel, retry, explain, watch nor read the logs of A\'s job; A can; env is redacted for others', async () => {
    const alice = track(as('alice'));
    const bob = track(as('bob'));
    const { job } = await alice.submitJob({ name: 'secret-job', nodes: 1, gpusPerNode: 1, command: ['sleep', '60'], env: { MYSECRET: 's3cret' } });
    expect(job!.spec!.tenant).toBe('alice'); // the token's only tenant
    expect(job!.spec!.env['MYSECRET']).toBe('s3cret');
    const missing = await refusal(bob.getJob('j-doesnotexist-0000'));
    const calls: [string, () => Promise<unknown>][] = [
      ['getJob', () => bob.getJob(job!.id)],
      ['cancelJob', () => bob.cancelJob(job!.id)],
      ['retryJob', () => bob.retryJob(job!.id)],
      ['explainJob', () => bob.explainJob(job!.id)],
      ['streamLogs', async () => { for await (const l of bob.streamLogs(job!.id)) void l; }],
      ['watchJob', async () => { for await (const e of bob.watchJob(job!.id)) void e; }],
    ];
    for (const [name, run] of calls) {
      const err = await refusal(run());
      expect([name, err.codeName, err.details]).toEqual([name, 'NOT_FOUND', `job ${job!.id} not found`]);
    }
    expect(missing.details).toBe('job j-doesnotexist-0000 not found'); // the same answer as a job that does not exist
    expect((await bob.listJobs()).jobs.map((j) => j.id)).not.toContain(job!.id);
    expect((await refusal(bob.listJobs({ tenant: 'alice' }))).codeName).toBe('PERMISSION_DENIED');
    expect((await alice.listJobs()).jobs.map((j) => j.id)).toContain(job!.id);

    // An operator of every tenant sees the job, but not its env; an admin does.
    const olga = track(asCert('olga'));
    expect((await olga.getJob(job!.id)).spec!.env).toEqual({ MYSECRET: '<redacted>' });
    expect((await track(as('admin')).getJob(job!.id)).spec!.env).toEqual({ MYSECRET: 's3cret' });
    // The certificate user carol acts for tenant alice too.
    expect((await track(asCert('carol')).getJob(job!.id)).spec!.env).toEqual({ MYSECRET: 's3cret' });

    const cancelled = await alice.cancelJob(job!.id);
    expect(cancelled.id).toBe(job!.id);
  });

  it('refuses unknown tenants, foreign tenants, and critical or disallowed priority classes for users', async () => {
    const ghost = await refusal(track(as('ghost')).submitJob({ nodes: 1, gpusPerNode: 1, command: ['true'] }));
    expect([ghost.codeName, ghost.details]).toEqual(['INVALID_ARGUMENT', 'spec.tenant "ghost" is not a tenant of the scheduling policy']);
    const unknownByAdmin = await refusal(track(as('admin')).submitJob({ tenant: 'nobody', nodes: 1, gpusPerNode: 1, command: ['true'] }));
    expect(unknownByAdmin.codeName).toBe('INVALID_ARGUMENT');
    const foreign = await refusal(track(as('alice')).submitJob({ tenant: 'bob', nodes: 1, gpusPerNode: 1, command: ['true'] }));
    expect([foreign.codeName, foreign.details]).toEqual(['PERMISSION_DENIED', 'alice@example.com may not submit jobs for tenant "bob"']);
    const critical = await refusal(track(as('alice')).submitJob({ priorityClass: 'critical', nodes: 1, gpusPerNode: 1, command: ['true'] }));
    expect([critical.codeName, critical.details]).toEqual(['PERMISSION_DENIED', 'priority class critical is for operators and admins']);
    const high = await refusal(track(as('bob')).submitJob({ priorityClass: 'high', nodes: 1, gpusPerNode: 1, command: ['true'] }));
    expect([high.codeName, high.details]).toEqual(['PERMISSION_DENIED', 'tenant bob may not use priority class "high" (allowed: low)']);
    // An operator may use critical.
    const { job } = await track(asCert('olga')).submitJob({ tenant: 'alice', priorityClass: 'critical', nodes: 1, gpusPerNode: 1, command: ['true'] });
    expect(job!.spec!.priorityClass).toBe('critical');
    await track(as('admin')).cancelJob(job!.id);
  });

  it('SubmitJobs holds each submission to SubmitJob\'s rules: a foreign tenant or class is refused, the rest submitted, the call audited', async () => {
    const one = { nodes: 1, gpusPerNode: 1, command: ['true'] };
    const res = await track(as('alice')).submitJobs([{ ...one, name: 'mine' }, { ...one, name: 'theirs', tenant: 'bob' }, { ...one, name: 'urgent', priorityClass: 'critical' }, { ...one, name: 'mine-too', tenant: 'alice' }]);
    expect(res.map((r) => (r.ok ? `${r.job.spec!.tenant}/${r.job.spec!.name}` : `${r.error.codeName}: ${r.error.details}`))).toEqual([
      'alice/mine',
      'PERMISSION_DENIED: alice@example.com may not submit jobs for tenant "bob"',
      'PERMISSION_DENIED: priority class critical is for operators and admins',
      'alice/mine-too',
    ]);
    const admin = track(as('admin'));
    for (const r of res) if (r.ok) await admin.cancelJob(r.job.id);
    // Audit entries are written without holding up the call.
    const entry = await eventually('the SubmitJobs audit entry', async () => (await admin.listAuditEvents({ subject: 'alice@example.com', method: 'SubmitJobs' })).events[0]);
    expect(entry).toMatchObject({ method: 'gantry.v1.JobService/SubmitJobs', outcome: 'OK', target: '4 submissions, 2 refused', tenant: 'alice,bob' });
  });
});

describe('limits', () => {
  it('an oversize name is refused without being echoed', async () => {
    const name = 'n'.repeat(200 * 1024);
    const err = await refusal(track(as('alice')).submitJob({ name, nodes: 1, gpusPerNode: 1, command: ['true'] }));
    expect(err.codeName).toBe('INVALID_ARGUMENT');
    expect(err.details).toContain('spec.name must be at most 128 bytes, got 204800 bytes starting "nnnn');
    expect(err.details.length).toBeLessThan(300);
    const id = await refusal(track(as('alice')).getJob('x'.repeat(200 * 1024)));
    expect(id.details.length).toBeLessThan(300);
  });

  it('malformed protobuf and invalid UTF-8 are INVALID_ARGUMENT', async () => {
    const creds = grpc.credentials.createSsl(readFileSync(f('ca.crt')), readFileSync(f('any.key')), readFileSync(f('any.crt')));
    const raw = new grpc.Client(stack.gatewayAddr, creds);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${tokens['alice']}`);
    const send = (bytes: Buffer) => new Promise<grpc.ServiceError | null>((resolve) => {
      raw.makeUnaryRequest('/gantry.v1.JobService/GetJob', (b: Buffer) => b, (b: Buffer) => b, bytes, md, { deadline: Date.now() + 5_000 }, (err) => resolve(err));
    });
    try {
      const truncated = await send(Buffer.from([0x0a, 0x10, 0x61]));
      expect([truncated?.code, truncated?.details]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringContaining('request is not a valid protobuf message')]);
      const notUtf8 = await send(Buffer.from([0x0a, 0x03, 0x6a, 0xff, 0xfe]));
      expect([notUtf8?.code, notUtf8?.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'request has a string field that is not valid UTF-8']);
    } finally {
      raw.close();
    }
  });

  it('a principal over its rate limit gets RESOURCE_EXHAUSTED with a retry hint', async () => {
    const flood = track(as('flood'));
    const results = await Promise.allSettled(Array.from({ length: 80 }, () => flood.whoAmI()));
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as GantryError);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.codeName).toBe('RESOURCE_EXHAUSTED');
    expect(refused[0]!.details).toMatch(/^rate limit of 20 calls\/s \(burst 40\) for flood@example\.com exceeded; retry in \d+ ms$/);
    expect(Number(refused[0]!.metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
    // Others are not affected.
    expect((await track(as('alice')).whoAmI()).subject).toBe('alice@example.com');
  });

  it('the scheduler\'s own SubmitJob applies the gateway\'s rules', async () => {
    const direct = track(new GantryClient({ address: stack.schedulerAddrs[0]!, timeoutMs: 5_000, retry: false, configFile: false, tls: stack.internalClientTls }));
    const cases: [string, Parameters<GantryClient['submitJob']>[0], string][] = [
      ['nodes=0', { nodes: 0, command: ['true'] }, 'spec.nodes must be between 1 and 4096, got 0'],
      ['empty command', { nodes: 1, command: [] }, 'spec.command must not be empty'],
      ['tenant a.b.>', { nodes: 1, command: ['true'], tenant: 'a.b.>' }, 'spec.tenant must match'],
      ['newline in name', { nodes: 1, command: ['true'], name: 'a\nb' }, 'spec.name must match'],
      ['MASTER_ADDR', { nodes: 1, command: ['true'], env: { MASTER_ADDR: '10.0.0.1' } }, 'spec.env.MASTER_ADDR is set by Gantry'],
    ];
    for (const [what, spec, message] of cases) {
      const err = await refusal(direct.submitJob(spec));
      expect([what, err.codeName]).toEqual([what, 'INVALID_ARGUMENT']);
      expect(err.details, what).toContain(message);
    }
  });
});

describe('audit', () => {
  it('records mutating calls with who, what and the outcome; only admins read it', async () => {
    const bob = track(as('bob'));
    await refusal(bob.setSchedulingConfig({}));
    const admin = track(as('admin'));
    const { events } = await admin.listAuditEvents({ limit: 200 });
    const denied = events.find((e) => e.subject === 'bob@example.com' && e.method === 'gantry.v1.AdminService/SetSchedulingConfig');
    expect(denied).toMatchObject({ outcome: 'PERMISSION_DENIED', authMethod: 'token' });
    expect(denied!.time!.getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(events.some((e) => e.subject === 'root@example.com' && e.method.endsWith('SetSchedulingConfig') && e.outcome === 'OK' && e.target === 'scheduling-config')).toBe(true);
    expect(events.some((e) => e.subject === 'alice@example.com' && e.method.endsWith('SubmitJob') && e.outcome === 'OK' && e.tenant === 'alice' && e.target.startsWith('j-'))).toBe(true);
    const filtered = await admin.listAuditEvents({ subject: 'bob@example.com', method: 'SetSchedulingConfig' });
    expect(filtered.events.length).toBeGreaterThan(0);
    expect(filtered.events.every((e) => e.subject === 'bob@example.com')).toBe(true);
    expect((await refusal(bob.listAuditEvents())).codeName).toBe('PERMISSION_DENIED');
  });

  it('gantry auth whoami and gantry admin audit, with flags and with a config file', async () => {
    const { command, args: cliArgs } = cliCommand();
    const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(command, [...cliArgs, '--addr', stack.gatewayAddr, ...args], { cwd: REPO_ROOT, timeout: 60_000, env: { ...process.env, GANTRY_TOKEN: '', ...env } }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
    const tlsFlags = ['--ca', f('ca.crt'), '--cert', f('any.crt'), '--key', f('any.key')];
    const who = await cli([...tlsFlags, '--token', tokens['alice']!, 'auth', 'whoami']);
    expect(who.stderr).not.toContain('gantry:');
    expect(who.stdout).toMatch(/subject:\s+alice@example\.com/);
    expect(who.stdout).toMatch(/tenants:\s+alice/);
    const denied = await cli([...tlsFlags, '--token', tokens['alice']!, 'admin', 'audit']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('PERMISSION_DENIED: ListAuditEvents needs the admin role');

    writeFileSync(f('config.yaml'), `token: ${tokens['admin']}\ntls:\n  ca: ${f('ca.crt')}\n  cert: ${f('any.crt')}\n  key: ${f('any.key')}\n`);
    const audit = await cli(['admin', 'audit', '--subject', 'bob@example.com'], { GANTRY_CONFIG: f('config.yaml') });
    expect(audit.stderr).not.toContain('gantry:');
    expect(audit.stdout).toMatch(/SetSchedulingConfig\s+-\s+-\s+PERMISSION_DENIED/);
    const adminWho = await cli(['-o', 'json', 'auth', 'whoami'], { GANTRY_CONFIG: f('config.yaml') });
    expect(JSON.parse(adminWho.stdout)).toMatchObject({ subject: 'root@example.com', roles: ['admin'], authMethod: 'token' });
    const badFile = await cli(['auth', 'whoami'], { GANTRY_CONFIG: f('missing.yaml') });
    expect([badFile.code, badFile.stderr.trim()]).toEqual([2, `gantry: GANTRY_CONFIG names ${f('missing.yaml')}, which does not exist`]);
  });
});

describe('configuration', () => {
  it('the gateway refuses to start with an incomplete auth configuration, naming the variable', async () => {
    const { command, args, cwd } = serviceCommand('gateway');
    const start = (env: NodeJS.ProcessEnv) => new Promise<{ code: number; stderr: string }>((resolve) => execFile(command, args, { cwd, env: { ...process.env, METRICS_PORT: '0', GATEWAY_GRPC_PORT: '0', ...env }, timeout: 20_000 }, (err, _o, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr })));
    const noIssuer = await start({ GATEWAY_AUTH: 'token', GATEWAY_JWT_KEYS_FILE: f('jwks.json') });
    expect(noIssuer.code).toBe(2);
    expect(noIssuer.stderr).toContain('GATEWAY_JWT_ISSUER: required when GATEWAY_AUTH includes token');
    const bad = await start({ GATEWAY_AUTH: 'password' });
    expect(bad.stderr).toContain('invalid configuration: GATEWAY_AUTH: must be off, token, mtls or token,mtls');
  });
});

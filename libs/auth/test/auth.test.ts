// @gantry/auth without a server: tokens (every refusal reason), certificate identities, the
// access table, the policy file, settings from env, the rate limiter, strict decoding, quoting.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { GetJobRequest, JobServiceService, NodeServiceService, AdminServiceService, AuthServiceService } from '@gantry/proto';
import {
  ANONYMOUS_ADMIN, AuthConfigError, Authenticator, METHOD_RULES, RateLimiter, assertEveryMethodListed, authSettingsFromEnv, boundedDetails, certificateIdentity,
  decodeStrict, generateSigningKey, hasRole, inTenant, isMalformed, parseAuthPolicy, parseRateLimit, preview, seesSecretsOf, signToken, userPriorityClasses, type Principal,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'gantry-auth-unit-'));
const ISSUER = 'https://issuer.test';

async function tokenAuthenticator() {
  const key = await generateSigningKey('k1');
  const file = join(dir, `jwks-${Math.random()}.json`);
  writeFileSync(file, JSON.stringify(key.jwks));
  const auth = await Authenticator.create(authSettingsFromEnv({ GATEWAY_AUTH: 'token', GATEWAY_JWT_KEYS_FILE: file, GATEWAY_JWT_ISSUER: ISSUER }));
  const md = (token: string) => { const m = new Metadata(); m.set('authorization', `Bearer ${token}`); return m; };
  return { key, auth, md };
}

async function reason(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { return `${(err as { code: number }).code} ${(err as Error).message}`; }
  return 'accepted';
}

describe('bearer tokens', () => {
  it('accepts a valid token and gives subject, roles, tenants and expiry', async () => {
    const { key, auth, md } = await tokenAuthenticator();
    const p = await auth.authenticate(md(await signToken(key, { subject: 'alice', roles: ['user'], tenants: ['t1'], issuer: ISSUER })), undefined);
    expect(p).toMatchObject({ subject: 'alice', roles: ['user'], tenants: ['t1'], method: 'token' });
    expect(p.expiresAt!.getTime()).toBeGreaterThan(Date.now());
  });

  it('refuses with UNAUTHENTICATED (16) and the precise reason', async () => {
    const { key, auth, md } = await tokenAuthenticator();
    const other = await generateSigningKey('k1');
    const sign = (extra: Partial<Parameters<typeof signToken>[1]> = {}, k = key) => signToken(k, { subject: 'a', roles: ['user'], issuer: ISSUER, ...extra });
    expect(await reason(auth.authenticate(md(await sign({ ttlSec: -60 })), undefined))).toMatch(/^16 bearer token expired at \d{4}-/);
    expect(await reason(auth.authenticate(md(await sign({}, other)), undefined))).toBe('16 bearer token has a bad signature');
    expect(await reason(auth.authenticate(md(await sign({ audience: 'x' })), undefined))).toBe('16 bearer token has the wrong audience (want "gantry")');
    expect(await reason(auth.authenticate(md(await sign({ issuer: 'https://evil' })), undefined))).toBe(`16 bearer token has the wrong issuer (want "${ISSUER}")`);
    expect(await reason(auth.authenticate(md('abc'), undefined))).toBe('16 bearer token is not a JWT (expected header.payload.signature)');
    expect(await reason(auth.authenticate(new Metadata(), undefined))).toMatch(/^16 missing credentials/);
    const basic = new Metadata(); basic.set('authorization', 'Basic dXNlcjpwYXNz');
    expect(await reason(auth.authenticate(basic, undefined))).toBe('16 authorization must be "Bearer <token>"');
    expect(await reason(auth.authenticate(md(await signToken(key, { subject: 'a', roles: ['root' as 'admin'], issuer: ISSUER })), undefined))).toMatch(/unknown roles \["root"\]/);
    // alg "none" is never accepted.
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'a', iss: ISSUER, aud: 'gantry', exp: 9e9, roles: ['admin'] })).toString('base64url')}.`;
    expect(await reason(auth.authenticate(md(none), undefined))).toMatch(/^16 bearer token/);
  });

  it('with GATEWAY_AUTH=off every caller is the anonymous admin', async () => {
    const auth = await Authenticator.create(authSettingsFromEnv({}));
    expect(await auth.authenticate(new Metadata(), undefined)).toBe(ANONYMOUS_ADMIN);
    expect(auth.settings.rateLimit).toBe('off');
  });
});

describe('settings from env', () => {
  const err = (env: Record<string, string>) => { try { authSettingsFromEnv(env); return ''; } catch (e) { expect(e).toBeInstanceOf(AuthConfigError); return (e as Error).message; } };
  it('names the bad variable', () => {
    expect(err({ GATEWAY_AUTH: 'yes' })).toMatch(/^invalid configuration: GATEWAY_AUTH: must be off, token, mtls or token,mtls/);
    expect(err({ GATEWAY_AUTH: 'token' })).toMatch(/^invalid configuration: GATEWAY_JWT_KEYS_FILE: required/);
    expect(err({ GATEWAY_AUTH: 'token', GATEWAY_JWT_KEYS_FILE: 'x' })).toMatch(/^invalid configuration: GATEWAY_JWT_ISSUER: required/);
    expect(err({ GATEWAY_AUTH: 'mtls' })).toMatch(/^invalid configuration: GATEWAY_AUTH_POLICY_FILE: required/);
    expect(err({ GATEWAY_AUTH: 'mtls', GATEWAY_AUTH_POLICY_FILE: 'p', GATEWAY_RATE_LIMIT: 'fast' })).toMatch(/^invalid configuration: GATEWAY_RATE_LIMIT:/);
    expect(authSettingsFromEnv({ GATEWAY_AUTH: 'mtls', GATEWAY_AUTH_POLICY_FILE: 'p' }).rateLimit).toEqual({ ratePerSec: 50, burst: 100 });
  });

  it('refuses a symmetric key file', async () => {
    const file = join(dir, 'oct.json');
    writeFileSync(file, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    await expect(Authenticator.create(authSettingsFromEnv({ GATEWAY_AUTH: 'token', GATEWAY_JWT_KEYS_FILE: file, GATEWAY_JWT_ISSUER: ISSUER }))).rejects.toThrow(/GATEWAY_JWT_KEYS_FILE: .* symmetric/);
  });
});

describe('certificates and the policy file', () => {
  it('takes the URI SAN first, then email, then DNS', () => {
    expect(certificateIdentity({ subjectaltname: 'DNS:host.example, URI:spiffe://c/u/a, email:a@b' })).toBe('spiffe://c/u/a');
    expect(certificateIdentity({ subjectaltname: 'DNS:host.example, email:a@b' })).toBe('a@b');
    expect(certificateIdentity({ subjectaltname: 'IP Address:1.2.3.4' })).toBeUndefined();
  });

  it('parses grants and priority classes, listing every problem', () => {
    const p = parseAuthPolicy('principals:\n  "a@b": { roles: [operator], tenants: ["*"] }\ntenants:\n  t1: { priorityClasses: [low] }\n', 'p.yaml');
    expect(p.principals.get('a@b')).toEqual({ roles: ['operator'], tenants: ['*'] });
    expect(userPriorityClasses(p, 't1')).toEqual(['low']);
    expect(userPriorityClasses(p, 'other')).not.toContain('critical');
    expect(() => parseAuthPolicy('principals:\n  x: { roles: [god] }\ntenants:\n  t: { priorityClasses: [urgent] }\nextra: 1\n', 'p.yaml')).toThrow(/unknown key "extra".*unknown roles \["god"\].*unknown classes \["urgent"\]/);
  });
});

describe('roles', () => {
  const p = (roles: Principal['roles'], tenants: string[] = []): Principal => ({ subject: 's', roles, tenants, method: 'token' });
  it('admin > operator > user; tenants; secrets only for named tenants and admins', () => {
    expect(hasRole(p(['admin']), 'operator')).toBe(true);
    expect(hasRole(p(['operator']), 'admin')).toBe(false);
    expect(hasRole(p(['user']), 'user')).toBe(true);
    expect(hasRole(p([]), 'user')).toBe(false);
    expect(inTenant(p(['user'], ['a']), 'b')).toBe(false);
    expect(inTenant(p(['operator'], ['*']), 'b')).toBe(true);
    expect(seesSecretsOf(p(['operator'], ['*']), 'b')).toBe(false);
    expect(seesSecretsOf(p(['user'], ['b']), 'b')).toBe(true);
    expect(seesSecretsOf(p(['admin']), 'b')).toBe(true);
  });

  it('every method of every gateway service has a rule, and the table names only those', () => {
    const services = [JobServiceService, NodeServiceService, AdminServiceService, AuthServiceService];
    expect(() => assertEveryMethodListed(services)).not.toThrow();
    const paths = services.flatMap((s) => Object.values(s).map((m) => m.path.slice(1))).sort();
    expect(Object.keys(METHOD_RULES).sort()).toEqual(paths);
    expect(() => assertEveryMethodListed([{ x: { path: '/gantry.v1.JobService/DropTables' } }])).toThrow(/DropTables/);
  });
});

describe('rate limiter', () => {
  it('allows the burst, then refuses with the time until a token is back, per key, bounded', () => {
    let now = 0;
    const rl = new RateLimiter({ ratePerSec: 10, burst: 3 }, 2, () => now);
    expect([rl.take('a').ok, rl.take('a').ok, rl.take('a').ok]).toEqual([true, true, true]);
    expect(rl.take('a')).toEqual({ ok: false, retryAfterMs: 100 });
    expect(rl.take('b').ok).toBe(true);
    now += 100;
    expect(rl.take('a').ok).toBe(true);
    rl.take('c');
    expect(rl.size).toBe(2);
    expect(parseRateLimit('5/10')).toEqual({ ratePerSec: 5, burst: 10 });
    expect(parseRateLimit('0/10')).toMatch(/above 0/);
  });
});

describe('strict decoding and quoting', () => {
  it('invalid UTF-8 and truncated messages become MalformedRequest; valid ones decode', () => {
    const ok = decodeStrict(GetJobRequest.decode, GetJobRequest.encode({ jobId: 'j-1' }).finish());
    expect(ok).toEqual({ jobId: 'j-1' });
    const bad = decodeStrict(GetJobRequest.decode, Uint8Array.from([0x0a, 0x02, 0xc3, 0x28]));
    expect(isMalformed(bad) && bad.reason).toBe('request has a string field that is not valid UTF-8');
    const cut = decodeStrict(GetJobRequest.decode, Uint8Array.from([0x0a, 0x05, 0x61]));
    expect(isMalformed(cut) && cut.reason).toMatch(/^request is not a valid protobuf message/);
  });

  it('quotes a prefix only, and bounds any message', () => {
    expect(preview('abc')).toBe('"abc"');
    expect(preview('x'.repeat(1000))).toBe(`"${'x'.repeat(32)}…" (1000 bytes)`);
    const msg = boundedDetails(`spec.name must match /x/, got ${JSON.stringify('y'.repeat(200_000))}`);
    expect(msg.length).toBeLessThan(120);
    expect(boundedDetails('z'.repeat(5000)).length).toBeLessThan(1100);
  });
});

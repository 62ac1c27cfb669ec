// The gateway's web status page in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core; no browser download) against a real stack: the page shows the nodes, jobs,
// events and storage targets; an XID 79 injected on a simulated host turns that node QUARANTINED
// on screen without a reload; text from a job's output is shown as text, never run. With token
// auth on, the data endpoint answers 401 without a token and the page works once a token is
// entered. A screenshot is kept under test-artifacts/ (git-ignored).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { generateSigningKey, signToken } from '@gantry/auth';
import { JobState } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { REPO_ROOT, serviceCommand } from '../../deploy/local/services.js';
import { ensureDevCerts } from '../../deploy/local/dev-certs.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { freePort } from '../harness/ports.js';
import { sim } from '../harness/tools.js';
import { FAST_HEALTH, FAST_RECOVERY } from '../harness/fast-config.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const STORAGE_TARGETS = JSON.stringify([{ name: 'ckpt', mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9 }]);
/** Output a job prints before failing: its last exception line becomes the failure's evidence. */
const HOSTILE = '<img src=x onerror="window.__xss=1">';

const setup = stackPerTest();
let browser: BrowserContext | undefined;
let profile: string | undefined;

afterEach(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  browser = profile = undefined;
});

async function openBrowser(): Promise<Page> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (node deploy/local/bootstrap.mjs does)`);
  profile = mkdtempSync(join(tmpdir(), 'gantry-chromium-'));
  // A fresh profile per test; launchPersistentContext passes it as --user-data-dir.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 1000 },
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(60_000);
  return page;
}

/** The state cell of a node's row as the page shows it now. */
const nodeState = (page: Page, node: string) => page.locator(`#nodes tr[data-node="${node}"] td.state`);

describe('web status page', () => {
  it('shows nodes, jobs, events and storage; an injected XID 79 turns the node QUARANTINED on screen without a reload', async () => {
    const port = await freePort();
    const { stack, client } = await setup({
      agents: 2,
      env: {
        gateway: { GATEWAY_STATUS_PORT: String(port) },
        'node-agent': { TELEMETRY_INTERVAL_MS: '1000' },
        checkpoint: { STORAGE_TARGETS },
      },
    });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    await client.setHealthConfig(FAST_HEALTH);
    // A job whose output the page shows in its recovery chain: markup in it must stay text.
    const { job } = await client.submitJob({ name: 'hostile-output', nodes: 1, gpusPerNode: 1, command: ['sh', '-c', `echo 'ValueError: ${HOSTILE}' >&2; exit 1`] });
    await waitForJob(client, job!.id, [JobState.JOB_STATE_FAILED], 45_000);

    const page = await openBrowser();
    await page.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(() => nodeState(page, 'node-1').textContent(), { timeout: 30_000 }).toBe('READY');
    await page.evaluate(() => { (globalThis as unknown as { __sameDocument: boolean }).__sameDocument = true; });

    await sim(stack, 'node-1', 'inject', 'xid', '79', '--gpu', '3');
    await expect.poll(() => nodeState(page, 'node-1').textContent(), { timeout: 60_000, interval: 500 }).toBe('QUARANTINED');
    expect(await nodeState(page, 'node-0').textContent()).toBe('READY');
    // The same document all along: the change arrived by polling, not by a reload.
    expect(await page.evaluate(() => (globalThis as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true);
    // Its conditions and the event feed say why.
    await expect.poll(() => page.locator('#events tbody').textContent(), { timeout: 15_000 }).toMatch(/node-1.*→ QUARANTINED/s);

    // The failed job and its chain, with the hostile line as literal text and nothing executed.
    const row = page.locator(`#jobs tr[data-job="${job!.id}"]`);
    expect(await row.locator('td.state').textContent()).toBe('FAILED');
    expect(await row.textContent()).toContain(HOSTILE);
    expect(await page.locator('#jobs img, #events img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
    // Storage targets from the checkpoint service.
    expect(await page.locator('#storage tr[data-target="ckpt"]').textContent()).toContain('/mnt/checkpoints');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });
  });

  it('with token auth: 401 without a token, each caller sees its own tenant\'s jobs and events, the page works once a token is entered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-status-auth-'));
    const key = await generateSigningKey('status-test');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(key.jwks));
    const issuer = 'https://issuer.test/';
    const port = await freePort();
    const { stack } = await setup({
      agents: 1,
      env: { gateway: { GATEWAY_STATUS_PORT: String(port), GATEWAY_AUTH: 'token', GATEWAY_JWT_KEYS_FILE: join(dir, 'jwks.json'), GATEWAY_JWT_ISSUER: issuer } },
    });
    const mint = (subject: string, roles: ('admin' | 'user')[], tenants: string[]) => signToken(key, { subject, roles, tenants, issuer });
    const as = async (subject: string, roles: ('admin' | 'user')[], tenants: string[]) => new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: false, configFile: false, token: await mint(subject, roles, tenants) });
    const admin = await as('root@example.com', ['admin'], []);
    const bobClient = await as('bob@example.com', ['user'], ['bob']);
    try {
      await admin.setSchedulingConfig({ tenants: { alice: { weight: 1 }, bob: { weight: 1 } } });
      await bobClient.submitJob({ name: 'bobs-job', nodes: 1, gpusPerNode: 1, command: ['true'] });
    } finally {
      admin.close();
      bobClient.close();
    }
    const base = `http://127.0.0.1:${port}`;
    const noToken = await fetch(`${base}/api/snapshot`);
    expect(noToken.status).toBe(401);
    expect(noToken.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await noToken.json()) as { error: string }).error).toMatch(/missing credentials/);
    const garbage = await fetch(`${base}/api/snapshot`, { headers: { authorization: 'Bearer not-a-jwt' } });
    expect(garbage.status).toBe(401);

    const alice = await mint('alice@example.com', ['user'], ['alice']);
    const ok = await fetch(`${base}/api/snapshot`, { headers: { authorization: `Bearer ${alice}` } });
    expect(ok.status).toBe(200);
    type Snap = { subject: string; nodes: { items?: { name: string }[] }; jobs: { items?: { name: string }[] }; events: { items?: { kind: string; jobName: string; subject: string }[] } };
    const snap = (await ok.json()) as Snap;
    expect(snap.subject).toBe('alice@example.com');
    expect(snap.nodes.items?.map((n) => n.name)).toEqual(['node-0']);
    // Bob's job is neither listed nor in the event feed for alice; node events are.
    expect(snap.jobs.items).toEqual([]);
    expect(snap.events.items?.filter((e) => e.kind === 'job')).toEqual([]);
    expect(snap.events.items?.some((e) => e.kind === 'node' && e.subject === 'node-0')).toBe(true);
    const bobToken = await mint('bob@example.com', ['user'], ['bob']);
    const bobSnapshot = async () => (await (await fetch(`${base}/api/snapshot`, { headers: { authorization: `Bearer ${bobToken}` } })).json()) as Snap;
    // The feed follows GANTRY_EVENTS, which the outbox relay fills a moment after the submit.
    let bob = await bobSnapshot();
    for (const deadline = Date.now() + 20_000; !bob.events.items?.some((e) => e.kind === 'job') && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 250));
      bob = await bobSnapshot();
    }
    expect(bob.jobs.items?.map((j) => j.name)).toEqual(['bobs-job']);
    expect(bob.events.items?.some((e) => e.kind === 'job' && e.jobName === 'bobs-job')).toBe(true);
    // A principal without a role: authenticated, but node and storage sections are refused with the reason.
    const nobody = await mint('nobody@example.com', [], ['alice']);
    const limited = (await (await fetch(`${base}/api/snapshot`, { headers: { authorization: `Bearer ${nobody}` } })).json()) as { nodes: { error?: string }; storage: { error?: string } };
    expect(limited.nodes.error).toMatch(/ListNodes needs the user role/);
    expect(limited.storage.error).toMatch(/need the user role/);

    const page = await openBrowser();
    await page.goto(`${base}/`);
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 30_000 }).toMatch(/Not updated: 401/);
    await page.fill('#token', alice);
    await page.click('#credentials button[type="submit"]');
    await expect.poll(() => nodeState(page, 'node-0').textContent(), { timeout: 30_000 }).toBe('READY');
    expect(await page.locator('#status').textContent()).toContain('Signed in as alice@example.com');
    // The token stays in this tab's sessionStorage, sent as the Authorization header.
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('gantry.status.token'))).toBe(alice);
    rmSync(dir, { recursive: true, force: true });
  });

  it('with mutual TLS: served over HTTPS, a client certificate of the CA identifies the caller, none or another CA\'s is refused with 401', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-status-mtls-'));
    const certs = ensureDevCerts(join(dir, 'tls'));
    writeFileSync(join(dir, 'policy.yaml'), 'principals:\n  "spiffe://gantry/client": { roles: [user], tenants: [alice] }\n');
    const port = await freePort();
    await setup({
      agents: 1,
      env: { gateway: { GATEWAY_STATUS_PORT: String(port), TLS_CERT_FILE: certs.cert('gateway'), TLS_KEY_FILE: certs.key('gateway'), TLS_CLIENT_CA_FILE: certs.ca, GATEWAY_AUTH: 'mtls', GATEWAY_AUTH_POLICY_FILE: join(dir, 'policy.yaml') } },
    });
    const stranger = ensureDevCerts(join(dir, 'other-ca')); // the same names, another CA
    const get = (withCert: false | typeof certs) => new Promise<{ status: number; body: { subject?: string; error?: string; nodes?: { items?: unknown[] } } }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/snapshot', ca: readFileSync(certs.ca), servername: 'localhost', ...(withCert ? { cert: readFileSync(withCert.cert('client')), key: readFileSync(withCert.key('client')) } : {}) }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => { text += c.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { subject?: string } }));
      });
      req.on('error', reject);
      req.end();
    });
    const anonymous = await get(false);
    expect(anonymous.status).toBe(401);
    // A certificate the handshake could not verify against TLS_CLIENT_CA_FILE identifies nobody.
    expect((await get(stranger)).status).toBe(401);
    const client = await get(certs);
    expect(client.status).toBe(200);
    expect(client.body.subject).toBe('spiffe://gantry/client');
    expect(client.body.nodes?.items).toHaveLength(1);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a bad GATEWAY_STATUS_PORT stops the gateway at start, naming the variable', async () => {
    const { command, args, cwd } = serviceCommand('gateway');
    const res = await new Promise<{ code: number; stderr: string }>((resolve) => execFile(command, args, { cwd, env: { ...process.env, METRICS_PORT: '0', GATEWAY_GRPC_PORT: '0', GATEWAY_STATUS_PORT: 'http' }, timeout: 20_000 }, (err, _o, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr })));
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('GATEWAY_STATUS_PORT: must be off or a TCP port (0-65535)');
  });
});

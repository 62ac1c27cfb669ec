// Internal mutual TLS on a real stack (the harness's dev mode: a CA made with openssl for this
// stack, a certificate per process): the gateway reaches the scheduler, the scheduler and the
// checkpoint service reach each other, and both refuse a caller whose certificate chains to
// another CA, a caller without a certificate, and plaintext.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobState, jobStateName } from '@gantry/proto';
import { CheckpointClient, GantryClient, StorageClient } from '@gantry/sdk';
import { waitForJob } from '../harness/fixtures.js';
import { ensureDevCerts } from '../../deploy/local/dev-certs.js';
import { portOpen, serviceCommand } from '../../deploy/local/services.js';
import { freePort } from '../harness/ports.js';
import { ManagedProcess } from '../harness/process.js';
import { eventually, TestStack } from '../harness/stack.js';

let stack: TestStack;
const TARGETS = JSON.stringify([{ name: 'ckpt', mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9 }]);

beforeAll(async () => {
  stack = await new TestStack({
    agents: 1,
    internalTls: true,
    env: { checkpoint: { STORAGE_TARGETS: TARGETS }, 'node-agent': { TELEMETRY_INTERVAL_MS: '1000' } },
  }).start();
}, 120_000);

afterAll(async () => { await stack?.stop(); });

/** grpc.health.v1.Health/Check with the given credentials: SERVING, or the error's code and details. */
function health(address: string, creds: grpc.ChannelCredentials): Promise<string> {
  const client = new grpc.Client(address, creds);
  return new Promise((resolve) => {
    client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (err, res) => {
      client.close();
      resolve(err ? `${grpc.status[err.code]}: ${err.details}` : res?.[0] === 0x08 && res[1] === 1 ? 'SERVING' : `status ${res?.toString('hex')}`);
    });
  });
}

describe('internal mutual TLS', () => {
  it('every service started with it', () => {
    for (const name of ['scheduler-0', 'gateway', 'checkpoint']) expect(stack.logsOf(name)).toContain('"internalTls":"mutual"');
  });

  it('the gateway reaches the scheduler, the scheduler the checkpoint service, and the checkpoint service the scheduler', async () => {
    const gantry = new GantryClient({ address: stack.gatewayAddr, configFile: false });
    try {
      const { job } = await gantry.submitJob({ name: 'over-mtls', nodes: 1, gpusPerNode: 1, command: ['true'] });
      const done = await waitForJob(gantry, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
      expect(jobStateName(done.state)).toBe('SUCCEEDED');
      // The operations report is built by the scheduler, partly from the checkpoint service's API.
      const report = await gantry.getOperationsReport(3600);
      expect(report.limits.filter((l) => l.startsWith('checkpoints:'))).toEqual([]);
    } finally {
      gantry.close();
    }
    // A checkpoint service whose storage controller reads node telemetry through the scheduler.
    const port = await freePort();
    const { command, args, cwd } = serviceCommand('checkpoint');
    const checkpoint = new ManagedProcess({
      name: 'checkpoint-storage', command, args, cwd,
      env: {
        NATS_URL: stack.nats.url, REDIS_URL: stack.redisServer.url, LOG_LEVEL: 'debug', METRICS_PORT: '0', CHECKPOINT_GRPC_PORT: String(port),
        SCHEDULER_ADDR: stack.schedulerAddrs.join(','), STORAGE_CONTROL_MS: '500', STORAGE_TARGETS: TARGETS,
        ...stack.busEnv('checkpoint'), ...stack.internalTlsEnv('checkpoint'),
      },
      logFile: join(stack.workDir, 'logs', 'checkpoint-storage.log'),
      ready: () => portOpen(port),
    });
    await checkpoint.start();
    const storage = new StorageClient({ address: `127.0.0.1:${port}`, tls: stack.internalClientTls, configFile: false });
    try {
      const t = await eventually('the storage controller to read telemetry through the scheduler', async () => {
        const target = await storage.getTarget('ckpt');
        return (target.telemetry?.nodes ?? 0) >= 1 ? target : undefined;
      }, 60_000);
      expect(t.writePool?.reason).not.toMatch(/no SCHEDULER_ADDR/);
    } finally {
      storage.close();
      await checkpoint.stop('SIGTERM', 5_000);
    }
  }, 120_000);

  it('the scheduler and the checkpoint service refuse another CA\'s certificate, no certificate and plaintext', async () => {
    const other = ensureDevCerts(join(stack.workDir, 'other-ca'));
    const ca = readFileSync(stack.tlsFiles!.ca);
    const foreign = grpc.credentials.createSsl(ca, readFileSync(other.key('client')), readFileSync(other.cert('client')));
    for (const address of [stack.schedulerAddrs[0]!, stack.checkpointAddr]) {
      expect(await health(address, stack.credentialsFor(address))).toBe('SERVING');
      expect(await health(address, foreign)).toMatch(/^UNAVAILABLE: /);
      expect(await health(address, grpc.credentials.createSsl(ca))).toMatch(/^UNAVAILABLE: /);
      expect(await health(address, grpc.credentials.createInsecure())).toMatch(/^UNAVAILABLE: /);
    }
    // Through the SDK, as a client of the checkpoint service would call it.
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 3_000, retry: false, configFile: false, tls: { ca, cert: readFileSync(other.cert('client')), key: readFileSync(other.key('client')) } });
    try {
      await expect(ck.listCheckpoints('j-none')).rejects.toMatchObject({ codeName: 'UNAVAILABLE' });
    } finally {
      ck.close();
    }
  }, 60_000);

  it('the scheduler and the checkpoint service hold a direct caller to the shared request checks: bounds and strict decoding', async () => {
    const direct = new GantryClient({ address: stack.schedulerAddrs[0]!, timeoutMs: 5_000, retry: false, configFile: false, tls: stack.internalClientTls });
    try {
      await expect(direct.cancelJob('j-none', 'r'.repeat(200_000))).rejects.toMatchObject({
        codeName: 'INVALID_ARGUMENT', message: expect.stringMatching(/reason must be at most 1024 bytes, got 200000 bytes starting "r{10,40}/),
      });
    } finally {
      direct.close();
    }
    // GetJobRequest / GetLatestCheckpointRequest { job_id = 1 } holding bytes that are not UTF-8.
    for (const [address, path] of [[stack.schedulerAddrs[0]!, '/gantry.v1.JobService/GetJob'], [stack.checkpointAddr, '/gantry.v1.CheckpointService/GetLatestCheckpoint']] as const) {
      const raw = new grpc.Client(address, stack.credentialsFor(address));
      const err = await new Promise<grpc.ServiceError | null>((resolve) => raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b,
        Buffer.from([0x0a, 0x03, 0x6a, 0xff, 0xfe]), { deadline: Date.now() + 5_000 }, (e) => resolve(e)));
      raw.close();
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'request has a string field that is not valid UTF-8' });
    }
  }, 60_000);

  it('a service with a certificate of another CA than its peers\' does not start talking to them: exit 2 naming the variable', async () => {
    const other = ensureDevCerts(join(stack.workDir, 'other-ca'));
    const { command, args, cwd } = serviceCommand('scheduler');
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => execFile(command, args, {
      cwd, timeout: 30_000,
      env: { ...process.env, ...stack.busEnv('scheduler'), NATS_URL: stack.nats.url, REDIS_URL: stack.redisServer.url, METRICS_PORT: '0', SCHEDULER_GRPC_PORT: '0', INTERNAL_TLS_CA_FILE: stack.tlsFiles!.ca, INTERNAL_TLS_CERT_FILE: other.cert('scheduler'), INTERNAL_TLS_KEY_FILE: other.key('scheduler') },
    }, (err, _o, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr })));
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^scheduler: invalid configuration: INTERNAL_TLS_CERT_FILE: .*scheduler\.crt \(CN=gantry scheduler\) is not signed by the CA in .*ca\.crt$/);
  }, 60_000);
});

// What every service owes an operator: config errors named at start-up, gRPC health
// checking, Prometheus metrics, and a clean exit on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { serviceCommand, type ServiceName } from '../../deploy/local/services.js';
import { TestStack, eventually } from '../harness/stack.js';
import { keys } from '@gantry/store';

let stack: TestStack;

beforeAll(async () => { stack = await new TestStack({ agents: 1, schedulers: 2 }).start(); });
afterAll(async () => { await stack?.stop(); });

function runService(name: ServiceName, env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  const { command, args, cwd } = serviceCommand(name);
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, timeout: 30_000 }, (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }));
  });
}

function healthCheck(address: string, service: string): Promise<string> {
  const client = new grpc.Client(address, stack.credentialsFor(address));
  // grpc.health.v1.HealthCheckRequest { string service = 1; } encoded by hand: field 1, length-delimited.
  const req = Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service)]);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, req, { deadline: Date.now() + 5_000 }, (err, res) => {
      client.close();
      if (err) return reject(err);
      // HealthCheckResponse { ServingStatus status = 1; } -> 0x08 <status>; SERVING = 1.
      resolve(res && res[0] === 0x08 && res[1] === 1 ? 'SERVING' : `status ${res?.toString('hex')}`);
    });
  });
}

describe('service contract', () => {
  it.each([
    ['scheduler', { SCHEDULER_GRPC_PORT: 'abc' }, 'SCHEDULER_GRPC_PORT'],
    ['gateway', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['checkpoint', { METRICS_PORT: '70000' }, 'METRICS_PORT'],
    ['node-agent', { GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'bad name!' }, 'GANTRY_NODE_NAME'],
  ] as const)('%s refuses to start on a bad variable, naming it (exit 2, one line)', async (name, env, variable) => {
    const r = await runService(name, env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(variable);
  });

  it('serves grpc.health.v1 on every gRPC service', async () => {
    expect(await healthCheck(stack.gatewayAddr, 'gantry.v1.JobService')).toBe('SERVING');
    expect(await healthCheck(stack.gatewayAddr, '')).toBe('SERVING');
    expect(await healthCheck(stack.schedulerAddrs[0]!, 'gantry.v1.NodeService')).toBe('SERVING');
    expect(await healthCheck(stack.checkpointAddr, 'gantry.v1.CheckpointService')).toBe('SERVING');
  });

  it('answers server reflection with every service, health included', async () => {
    const client = new grpc.Client(stack.gatewayAddr, grpc.credentials.createInsecure());
    // ServerReflectionRequest { list_services = 7: "" }, encoded by hand to keep the test free of a reflection client.
    const call = client.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      call.on('data', (b: Buffer) => resolve(b));
      call.on('error', reject);
      call.write(Buffer.from([0x3a, 0x00]));
    });
    call.end();
    client.close();
    const text = reply.toString('latin1');
    for (const svc of ['gantry.v1.JobService', 'gantry.v1.NodeService', 'gantry.v1.AdminService', 'grpc.health.v1.Health']) expect(text).toContain(svc);
  });

  it('exposes Prometheus metrics', async () => {
    const port = /"metricsPort":(\d+)/.exec(stack.logsOf('scheduler-0'))![1];
    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(body).toMatch(/^gantry_scheduler_leader\{[^}]*\} 1$/m);
    expect(body).toMatch(/^# TYPE gantry_scheduler_cycle_seconds histogram$/m);
    expect(body).toMatch(/^gantry_process_cpu_seconds_total/m);
  });

  it('stops cleanly on SIGTERM and hands leadership over at once', async () => {
    const leader = stack.schedulers[0]!;
    const t = Date.now();
    await leader.stop('SIGTERM');
    expect(leader.exitCode).toBe(0);
    // The lease was released on shutdown, so the standby leads well before the TTL.
    await eventually('standby leads', async () => ((await stack.redis.get(keys.leader)) === 'scheduler-1' ? true : undefined), 5_000, 50);
    expect(Date.now() - t).toBeLessThan(4_000);
  });
});

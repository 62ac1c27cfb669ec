// Real NATS (JetStream) and Redis servers for a test suite, on free loopback ports, each in
// its own temporary data folder. Through testcontainers when a container runtime answers,
// otherwise by spawning the nats-server and redis-server binaries, so tests can kill and
// restart them either way.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { portOpen } from '../../deploy/local/services.js';
import { ManagedProcess } from './process.js';

export interface Server {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Stops and starts again on the same port and data folder. */
  restart(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
}


let containerRuntime: Promise<boolean> | undefined;

/** Probed once per process: testcontainers fails fast when no runtime exists. */
export function hasContainerRuntime(): Promise<boolean> {
  containerRuntime ??= (async () => {
    if (process.env.GANTRY_TEST_NO_CONTAINERS === '1') return false;
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      await getContainerRuntimeClient();
      return true;
    } catch {
      return false;
    }
  })();
  return containerRuntime;
}

function processServer(name: string, port: number, command: string, args: string[], logFile: string): Server {
  const proc = new ManagedProcess({ name, command, args, logFile, ready: () => portOpen(port) });
  return {
    url: '',
    port,
    start: () => proc.start(),
    stop: () => proc.stop('SIGTERM'),
    kill: () => proc.kill(),
    restart: () => proc.restart(),
  };
}

export async function startNats(workDir = mkdtempSync(join(tmpdir(), 'gantry-nats-'))): Promise<Server> {
  if (await hasContainerRuntime()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const c = await new GenericContainer('nats:2.10').withCommand(['-js']).withExposedPorts(4222).withWaitStrategy(Wait.forLogMessage(/Server is ready/)).start();
    const port = c.getMappedPort(4222);
    return { url: `nats://127.0.0.1:${port}`, port, start: async () => { await c.restart(); }, stop: async () => { await c.stop(); }, kill: async () => { await c.stop({ timeout: 0 }); }, restart: async () => { await c.restart(); } };
  }
  const port = await freePort();
  const s = processServer('nats-server', port, 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(workDir, 'jetstream')], join(workDir, 'nats.log'));
  await s.start();
  return { ...s, url: `nats://127.0.0.1:${port}` };
}

export async function startRedis(workDir = mkdtempSync(join(tmpdir(), 'gantry-redis-'))): Promise<Server> {
  if (await hasContainerRuntime()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const c = await new GenericContainer('redis:7').withExposedPorts(6379).withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/)).start();
    const port = c.getMappedPort(6379);
    return { url: `redis://127.0.0.1:${port}`, port, start: async () => { await c.restart(); }, stop: async () => { await c.stop(); }, kill: async () => { await c.stop({ timeout: 0 }); }, restart: async () => { await c.restart(); } };
  }
  const port = await freePort();
  // Append-only persistence so a restarted Redis keeps the control plane's state.
  const s = processServer('redis-server', port, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', workDir], join(workDir, 'redis.log'));
  await s.start();
  return { ...s, url: `redis://127.0.0.1:${port}` };
}

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

/**
 * A server in a container. The host port is fixed when the container is created, and stop
 * keeps the container, so a test can stop and start it again on the same address with its
 * data (what the process servers do too).
 */
async function containerServer(image: string, command: string[], containerPort: number, ready: RegExp, scheme: string): Promise<Server> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = await freePort();
  const c = await new GenericContainer(image).withCommand(command).withExposedPorts({ container: containerPort, host: port }).withWaitStrategy(Wait.forLogMessage(ready)).start();
  const waitOpen = async () => { for (let i = 0; i < 300 && !(await portOpen(port)); i++) await new Promise((r) => setTimeout(r, 100)); };
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    start: async () => { await c.restart(); await waitOpen(); },
    stop: async () => { await c.stop({ remove: false }); },
    kill: async () => { await c.stop({ remove: false, timeout: 0 }); },
    restart: async () => { await c.restart(); await waitOpen(); },
  };
}

export async function startNats(workDir = mkdtempSync(join(tmpdir(), 'gantry-nats-'))): Promise<Server> {
  if (await hasContainerRuntime()) return containerServer('nats:2.10', ['-js'], 4222, /Server is ready/, 'nats');
  const port = await freePort();
  const s = processServer('nats-server', port, 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(workDir, 'jetstream')], join(workDir, 'nats.log'));
  await s.start();
  return { ...s, url: `nats://127.0.0.1:${port}` };
}

export async function startRedis(workDir = mkdtempSync(join(tmpdir(), 'gantry-redis-'))): Promise<Server> {
  if (await hasContainerRuntime()) return containerServer('redis:7', ['redis-server', '--appendonly', 'yes'], 6379, /Ready to accept connections/, 'redis');
  const port = await freePort();
  // Append-only persistence so a restarted Redis keeps the control plane's state.
  const s = processServer('redis-server', port, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', workDir], join(workDir, 'redis.log'));
  await s.start();
  return { ...s, url: `redis://127.0.0.1:${port}` };
}

// Real NATS (JetStream) and Redis servers for a test suite, on free loopback ports, each in
// its own temporary data folder. Through testcontainers when a container runtime answers,
// otherwise by spawning the nats-server and redis-server binaries, so tests can kill and
// restart them either way.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { portOpen } from '../../deploy/local/services.js';
import { natsClusterUrl, natsMemberConfig, redisServerArgs, SENTINEL_MASTER, sentinelConfig, sentinelConfigPath, type NatsMember, type SentinelTiming } from '../../deploy/local/ha.js';
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

export interface NatsServer extends Server {
  /** Re-reads the configuration file (SIGHUP): new bus users take effect without a restart. */
  reload(): void;
}

/**
 * One nats-server with JetStream. With `configFile` (the bus authorisation of
 * deploy/local/bus-security.ts) it refuses clients without a listed NKEY, and always runs as a
 * process (so the file is the one the test wrote).
 */
export async function startNats(workDir = mkdtempSync(join(tmpdir(), 'gantry-nats-')), opts: { configFile?: string } = {}): Promise<NatsServer> {
  if (!opts.configFile && await hasContainerRuntime()) return { ...(await containerServer('nats:2.10', ['-js'], 4222, /Server is ready/, 'nats')), reload: () => undefined };
  const port = await freePort();
  const args = [...(opts.configFile ? ['-c', opts.configFile] : []), '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(workDir, 'jetstream')];
  const proc = new ManagedProcess({ name: 'nats-server', command: 'nats-server', args, logFile: join(workDir, 'nats.log'), ready: () => portOpen(port) });
  const s: NatsServer = {
    url: `nats://127.0.0.1:${port}`, port,
    start: () => proc.start(), stop: () => proc.stop('SIGTERM'), kill: () => proc.kill(), restart: () => proc.restart(),
    reload: () => { if (proc.pid) process.kill(proc.pid, 'SIGHUP'); },
  };
  await s.start();
  return s;
}

export async function startRedis(workDir = mkdtempSync(join(tmpdir(), 'gantry-redis-'))): Promise<Server> {
  if (await hasContainerRuntime()) return containerServer('redis:7', ['redis-server', '--appendonly', 'yes'], 6379, /Ready to accept connections/, 'redis');
  const port = await freePort();
  // Append-only persistence so a restarted Redis keeps the control plane's state.
  const s = processServer('redis-server', port, 'redis-server', redisServerArgs(port, workDir), join(workDir, 'redis.log'));
  await s.start();
  return { ...s, url: `redis://127.0.0.1:${port}` };
}

// --- The HA data plane: a three-node NATS JetStream cluster, Redis primary + replica + three sentinels.

export interface NatsClusterMember extends Server {
  name: string;
  httpPort: number;
  process: ManagedProcess;
}

export interface NatsCluster {
  /** Every member's client URL, comma-separated (NATS_URL). */
  url: string;
  members: NatsClusterMember[];
  /** The member a client connection of this name (the `name` it connected with) is on. */
  memberOf(connectionName: string): Promise<NatsClusterMember | undefined>;
  /** Resolves once every running member reports JetStream healthy (a meta leader, streams current). */
  healthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Three nats-server processes routed into one JetStream cluster, each with its own store. */
export async function startNatsCluster(workDir = mkdtempSync(join(tmpdir(), 'gantry-nats-cluster-')), opts: { authFile?: string } = {}): Promise<NatsCluster> {
  const specs: NatsMember[] = [];
  for (let i = 1; i <= 3; i++) specs.push({ name: `nats-${i}`, port: await freePort(), clusterPort: await freePort(), httpPort: await freePort() });
  const members = specs.map((m): NatsClusterMember => {
    const dir = join(workDir, m.name);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'nats.conf');
    // With the bus authorisation, every member enforces the same users and permissions.
    writeFileSync(conf, natsMemberConfig(m, specs, join(dir, 'jetstream')) + (opts.authFile ? readFileSync(opts.authFile, 'utf8') : ''));
    const proc = new ManagedProcess({ name: m.name, command: 'nats-server', args: ['-c', conf], logFile: join(dir, 'nats.log'), ready: () => portOpen(m.port) });
    return {
      name: m.name, port: m.port, httpPort: m.httpPort, url: `nats://127.0.0.1:${m.port}`, process: proc,
      start: () => proc.start(), stop: () => proc.stop('SIGTERM'), kill: () => proc.kill(), restart: () => proc.restart(),
    };
  });
  await Promise.all(members.map((m) => m.start()));
  const cluster: NatsCluster = {
    url: natsClusterUrl(specs),
    members,
    async memberOf(connectionName) {
      for (const m of members.filter((x) => x.process.running)) {
        try {
          const res = await fetch(`http://127.0.0.1:${m.httpPort}/connz?limit=1024`, { signal: AbortSignal.timeout(1_000) });
          const body = (await res.json()) as { connections?: { name?: string }[] };
          if (body.connections?.some((c) => c.name === connectionName)) return m;
        } catch { /* down or busy */ }
      }
      return undefined;
    },
    healthy: (timeoutMs = 30_000) => waitUntil('the NATS cluster to be healthy', async () => {
      const up = members.filter((m) => m.process.running);
      return (await Promise.all(up.map((m) => httpOk(`http://127.0.0.1:${m.httpPort}/healthz`)))).every(Boolean);
    }, timeoutMs),
    stop: async () => { await Promise.all(members.map((m) => m.stop())); },
  };
  await cluster.healthy(30_000);
  return cluster;
}

export interface RedisHa {
  /** The first primary's URL (REDIS_URL; with sentinels only its password and db count). */
  url: string;
  /** `host:port` of the three sentinels, comma-separated (REDIS_SENTINELS). */
  sentinels: string;
  masterName: string;
  /** The two data servers; which is primary changes with failovers. */
  servers: Server[];
  sentinelServers: Server[];
  /** The data server the sentinels name as primary now. */
  primary(): Promise<Server>;
  /**
   * Starts a stopped data server again, as a replica of the current primary (a returning old
   * primary would be turned into one by the sentinels anyway; this just does not wait for it).
   */
  restartAsReplica(server: Server): Promise<void>;
  /** Resolves once the sentinels agree on a primary that has a replica online. */
  healthy(timeoutMs?: number): Promise<void>;
  /** Environment for the services: REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER. */
  env(): NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** Redis primary + replica (AOF, fsync every second) and three sentinels, real processes. */
export async function startRedisHa(workDir = mkdtempSync(join(tmpdir(), 'gantry-redis-ha-')), timing?: SentinelTiming): Promise<RedisHa> {
  const ports = [await freePort(), await freePort()];
  const procs = ports.map((port, i) => {
    const dir = join(workDir, `redis-${i}`);
    mkdirSync(dir, { recursive: true });
    return new ManagedProcess({ name: `redis-${i}`, command: 'redis-server', args: redisServerArgs(port, dir, i === 0 ? undefined : ports[0]), logFile: join(dir, 'redis.log'), ready: () => portOpen(port) });
  });
  const servers: Server[] = procs.map((p, i) => ({
    url: `redis://127.0.0.1:${ports[i]}`, port: ports[i]!,
    start: () => p.start(), stop: () => p.stop('SIGTERM'), kill: () => p.kill(), restart: () => p.restart(),
  }));
  await Promise.all(servers.map((s) => s.start()));
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  const sentinelServers: Server[] = sentinelPorts.map((port, i) => {
    const dir = join(workDir, `sentinel-${i}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(sentinelConfigPath(dir), sentinelConfig(port, dir, ports[0]!, timing));
    const p = new ManagedProcess({ name: `sentinel-${i}`, command: 'redis-server', args: [sentinelConfigPath(dir), '--sentinel'], logFile: join(dir, 'sentinel.log'), ready: () => portOpen(port) });
    return { url: `redis://127.0.0.1:${port}`, port, start: () => p.start(), stop: () => p.stop('SIGTERM'), kill: () => p.kill(), restart: () => p.restart() };
  });
  await Promise.all(sentinelServers.map((s) => s.start()));

  const askSentinels = async <T>(fn: (r: Redis) => Promise<T>): Promise<T> => {
    let last: unknown;
    for (const s of sentinelServers) {
      const r = probe(s.port);
      try {
        await r.connect();
        return await fn(r);
      } catch (err) {
        last = err;
      } finally {
        r.disconnect();
      }
    }
    throw last instanceof Error ? last : new Error('no sentinel answered');
  };
  const primaryPort = async () => Number(((await askSentinels((r) => r.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER))) as string[])[1]);

  const ha: RedisHa = {
    url: servers[0]!.url,
    sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
    masterName: SENTINEL_MASTER,
    servers,
    sentinelServers,
    async primary() {
      const port = await primaryPort();
      const s = servers.find((x) => x.port === port);
      if (!s) throw new Error(`sentinels name 127.0.0.1:${port} as primary, not one of ours`);
      return s;
    },
    async restartAsReplica(server) {
      const i = servers.indexOf(server);
      const p = procs[i]!;
      const port = await primaryPort();
      p.opts.args = redisServerArgs(server.port, join(workDir, `redis-${i}`), port === server.port ? undefined : port);
      await p.start();
    },
    healthy: (timeoutMs = 30_000) => waitUntil('Redis primary with an online replica, known to all sentinels', async () => {
      const port = await primaryPort();
      const r = probe(port);
      try {
        await r.connect();
        const info = await r.info('replication');
        if (!/role:master/.test(info) || !/slave\d+:.*state=online/.test(info)) return false;
      } finally {
        r.disconnect();
      }
      // Every sentinel must know the replica and the two other sentinels, or it cannot fail over.
      const views = await Promise.all(sentinelServers.map(async (s) => {
        const c = probe(s.port);
        try {
          await c.connect();
          const master = (await c.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER)) as string[];
          const replicas = (await c.call('SENTINEL', 'replicas', SENTINEL_MASTER)) as string[][];
          const peers = (await c.call('SENTINEL', 'sentinels', SENTINEL_MASTER)) as unknown[];
          const replicaUp = replicas.some((fields) => { const f = fieldMap(fields); return !/s_down|o_down|disconnected/.test(f.flags ?? ''); });
          return Number(master[1]) === port && replicaUp && peers.length >= 2;
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      }));
      return views.every(Boolean);
    }, timeoutMs),
    env: () => ({ REDIS_URL: servers[0]!.url, REDIS_SENTINELS: ha.sentinels, REDIS_SENTINEL_MASTER: SENTINEL_MASTER }),
    stop: async () => {
      await Promise.all(sentinelServers.map((s) => s.stop()));
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
  await ha.healthy(30_000);
  return ha;
}

/** A one-shot client for probing a server that may be down (its errors are the answer, not noise). */
function probe(port: number): Redis {
  const r = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  r.on('error', () => undefined);
  return r;
}

function fieldMap(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

// `pnpm stack:up` / `pnpm stack:down`: a complete local Gantry in the background. NATS
// (JetStream) and Redis on their own ports with data under .gantry/, the four services and
// four simulated 8-GPU agents. What was started is recorded in .gantry/stack.json so that
// `down` stops exactly that and nothing else. `pnpm stack:up --ha` runs the HA data plane
// instead (three nats-server processes as one JetStream cluster with 3-replica streams; Redis
// primary + replica + three sentinels) and two schedulers, one leading, one standing by.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { NodeState } from '@gantry/proto';
import { NodeStore } from '@gantry/store';
import { REPO_ROOT, portOpen, runningRankPids, serviceCommand, simAgentEnv, simTopology, type ServiceName } from './services.js';
import { BusSecurity } from './bus-security.js';
import { buildBundles } from './bundle.js';
import { devTlsEnv, ensureDevCerts } from './dev-certs.js';
import { natsClusterUrl, natsMemberConfig, redisServerArgs, SENTINEL_MASTER, sentinelConfig, sentinelConfigPath, type NatsMember } from './ha.js';

export const STACK_DIR = join(REPO_ROOT, '.gantry');
/** dist/libgantry-admit.so (pnpm build:admit, run by bootstrap) for jobs with checkpoint.admitFlushes. */
const ADMIT_SHIM = join(REPO_ROOT, 'dist', 'libgantry-admit.so');
const STATE_FILE = join(STACK_DIR, 'stack.json');

export const PORTS = { nats: 14222, redis: 16379, gateway: 7070, scheduler: 7071, checkpoint: 7072, metricsBase: 9400 };
export const AGENTS = 4;
/** The `--ha` data plane: NATS client/route/monitoring ports, Redis replica and sentinels, the standby scheduler. */
export const HA_PORTS = {
  nats: [14222, 14223, 14224], natsCluster: [16222, 16223, 16224], natsHttp: [18222, 18223, 18224],
  redisReplica: 16380, sentinels: [16390, 16391, 16392], standbyScheduler: 7073,
};

function agentName(i: number): string {
  return `sim-node-${i}`;
}

function haNatsMembers(): NatsMember[] {
  return HA_PORTS.nats.map((port, i) => ({ name: `nats-${i + 1}`, port, clusterPort: HA_PORTS.natsCluster[i]!, httpPort: HA_PORTS.natsHttp[i]! }));
}

async function natsClusterHealthy(): Promise<boolean> {
  const ok = await Promise.all(HA_PORTS.natsHttp.map((p) => fetch(`http://127.0.0.1:${p}/healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false)));
  return ok.every(Boolean);
}

/** The primary has its replica online and every sentinel knows the two others (so a failover can happen). */
async function redisHaHealthy(): Promise<boolean> {
  const primary = new Redis(PORTS.redis, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await primary.connect();
    if (!/slave\d+:.*state=online/.test(await primary.info('replication'))) return false;
  } finally {
    primary.disconnect();
  }
  for (const port of HA_PORTS.sentinels) {
    const s = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await s.connect();
      if (((await s.call('SENTINEL', 'sentinels', SENTINEL_MASTER)) as unknown[]).length < 2) return false;
    } finally {
      s.disconnect();
    }
  }
  return true;
}

interface StackProcess { name: string; pid: number }
interface StackState { startedAt: string; processes: StackProcess[]; endpoints: Record<string, string> }

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}


export function readStack(): StackState | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as StackState;
}

/** The stack recorded in .gantry/stack.json, if every process of it is still alive. */
export function runningStack(): StackState | undefined {
  const s = readStack();
  return s && s.processes.every((p) => alive(p.pid)) ? s : undefined;
}

function launch(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): StackProcess {
  const logFile = join(STACK_DIR, 'logs', `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  return { name, pid: child.pid! };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000}s; see ${join(STACK_DIR, 'logs')}`);
}

export async function up(opts: { ha?: boolean } = {}): Promise<StackState> {
  const existing = runningStack();
  if (existing) return existing;
  if (readStack()) await down(); // a partly dead stack: clear it before starting afresh
  const ha = opts.ha ?? false;
  const ports: [string, number][] = Object.entries(PORTS).filter(([name]) => name !== 'metricsBase');
  if (ha) ports.push(...[...HA_PORTS.nats.slice(1), ...HA_PORTS.natsCluster, ...HA_PORTS.natsHttp, HA_PORTS.redisReplica, ...HA_PORTS.sentinels, HA_PORTS.standbyScheduler].map((p): [string, number] => ['ha', p]));
  for (const [name, port] of ports) {
    if (await portOpen(port)) throw new Error(`port ${port} (${name}) is already in use; stop whatever holds it or run pnpm stack:down`);
  }
  for (const d of ['nats', 'redis', 'logs', 'agents']) mkdirSync(join(STACK_DIR, d), { recursive: true });
  // The services and agents run from bundles of the working tree, built at every start (a few
  // seconds; each process then starts on a quarter of the CPU that loading its TypeScript
  // through tsx takes): deploy/local/bundle.ts.
  const bundles = join(STACK_DIR, 'bundles');
  rmSync(bundles, { recursive: true, force: true });
  await buildBundles(bundles);
  // Fresh bus credentials at every start (docs/security.md): a NATS user per service and agent,
  // the server's authorisation, and the scheduler's command signing key pair.
  rmSync(join(STACK_DIR, 'bus'), { recursive: true, force: true });
  const bus = new BusSecurity(join(STACK_DIR, 'bus'), Array.from({ length: AGENTS }, (_, i) => agentName(i)));
  // Internal mutual TLS between the services (docs/security.md), with a dev CA kept in
  // .gantry/tls (made on first start, renewed near expiry); GANTRY_INTERNAL_TLS=off for plaintext.
  const tls = process.env.GANTRY_INTERNAL_TLS === 'off' ? undefined : ensureDevCerts(join(STACK_DIR, 'tls'));
  const tlsEnv = (name: ServiceName): NodeJS.ProcessEnv => (tls ? devTlsEnv(tls, name) : {});
  const processes: StackProcess[] = [];
  const record = () => writeFileSync(STATE_FILE, JSON.stringify({ startedAt: new Date().toISOString(), processes, endpoints }, null, 2));
  const natsUrl = ha ? natsClusterUrl(haNatsMembers()) : `nats://127.0.0.1:${PORTS.nats}`;
  const redisUrl = `redis://127.0.0.1:${PORTS.redis}`;
  const sentinels = HA_PORTS.sentinels.map((p) => `127.0.0.1:${p}`).join(',');
  const schedulers = ha ? `127.0.0.1:${PORTS.scheduler},127.0.0.1:${HA_PORTS.standbyScheduler}` : `127.0.0.1:${PORTS.scheduler}`;
  const endpoints: Record<string, string> = {
    gateway: `127.0.0.1:${PORTS.gateway}`, scheduler: schedulers, checkpoint: `127.0.0.1:${PORTS.checkpoint}`, nats: natsUrl, redis: redisUrl,
    ...(ha ? { sentinels: `${sentinels} (master ${SENTINEL_MASTER})`, 'nats http': HA_PORTS.natsHttp.map((p) => `http://127.0.0.1:${p}`).join(',') } : {}),
    metrics: `http://127.0.0.1:${PORTS.metricsBase}-${PORTS.metricsBase + 2 + AGENTS + (ha ? 1 : 0)}/metrics`,
    'internal tls': tls ? `mutual, dev CA in ${tls.dir} (clients of ${PORTS.scheduler}/${PORTS.checkpoint}: --ca ca.crt --cert client.crt --key client.key)` : 'off (GANTRY_INTERNAL_TLS=off)',
  };
  try {
    if (ha) {
      const members = haNatsMembers();
      for (const m of members) {
        const dir = join(STACK_DIR, 'nats', m.name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'nats.conf'), natsMemberConfig(m, members, join(dir, 'jetstream')) + readFileSync(bus.natsAuthFile, 'utf8'));
        processes.push(launch(m.name, 'nats-server', ['-c', join(dir, 'nats.conf')], {}));
      }
      for (const [i, port] of [PORTS.redis, HA_PORTS.redisReplica].entries()) {
        const dir = join(STACK_DIR, 'redis', `redis-${i}`);
        mkdirSync(dir, { recursive: true });
        processes.push(launch(`redis-${i}`, 'redis-server', redisServerArgs(port, dir, i === 0 ? undefined : PORTS.redis), {}));
      }
      for (const [i, port] of HA_PORTS.sentinels.entries()) {
        const dir = join(STACK_DIR, 'redis', `sentinel-${i}`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(sentinelConfigPath(dir), sentinelConfig(port, dir, PORTS.redis, { downAfterMs: 2_000, failoverTimeoutMs: 10_000 }));
        processes.push(launch(`sentinel-${i}`, 'redis-server', [sentinelConfigPath(dir), '--sentinel'], {}));
      }
      record();
      await waitFor('the NATS cluster', natsClusterHealthy);
      await waitFor('Redis primary, replica and sentinels', redisHaHealthy);
    } else {
      processes.push(launch('nats-server', 'nats-server', ['-c', bus.natsAuthFile, '-js', '-a', '127.0.0.1', '-p', String(PORTS.nats), '-sd', join(STACK_DIR, 'nats')], {}));
      processes.push(launch('redis-server', 'redis-server', redisServerArgs(PORTS.redis, join(STACK_DIR, 'redis')), {}));
      record();
      await waitFor('nats-server', () => portOpen(PORTS.nats));
      await waitFor('redis-server', () => portOpen(PORTS.redis));
    }
    const common: NodeJS.ProcessEnv = {
      NATS_URL: natsUrl, REDIS_URL: redisUrl, LOG_LEVEL: 'info',
      ...(ha ? { NATS_STREAM_REPLICAS: '3', REDIS_SENTINELS: sentinels, REDIS_SENTINEL_MASTER: SENTINEL_MASTER } : {}),
    };
    const service = (name: ServiceName, port: number, metrics: number, env: NodeJS.ProcessEnv, label: string = name) => {
      const { command, args } = serviceCommand(name, bundles);
      processes.push(launch(label, command, args, { ...common, ...bus.env(name), ...tlsEnv(name), METRICS_PORT: String(metrics), ...env }));
      record();
      return waitFor(name, () => portOpen(port));
    };
    await service('scheduler', PORTS.scheduler, PORTS.metricsBase, { SCHEDULER_GRPC_PORT: String(PORTS.scheduler), CHECKPOINT_ADDR: endpoints.checkpoint! });
    if (ha) await service('scheduler', HA_PORTS.standbyScheduler, PORTS.metricsBase + 3 + AGENTS, { SCHEDULER_GRPC_PORT: String(HA_PORTS.standbyScheduler), CHECKPOINT_ADDR: endpoints.checkpoint! }, 'scheduler-standby');
    await Promise.all([
      service('gateway', PORTS.gateway, PORTS.metricsBase + 1, { GATEWAY_GRPC_PORT: String(PORTS.gateway), SCHEDULER_ADDR: schedulers }),
      // Storage admission for the simulated hosts' /mnt/checkpoints mount (docs/storage.md), sized from their telemetry through the scheduler.
      service('checkpoint', PORTS.checkpoint, PORTS.metricsBase + 2, { CHECKPOINT_GRPC_PORT: String(PORTS.checkpoint), SCHEDULER_ADDR: schedulers, STORAGE_TARGETS: process.env.STORAGE_TARGETS ?? JSON.stringify([{ name: 'checkpoints', mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9 }]) }),
    ]);
    const redis = ha
      ? new Redis({ sentinels: HA_PORTS.sentinels.map((port) => ({ host: '127.0.0.1', port })), name: SENTINEL_MASTER, maxRetriesPerRequest: 3 })
      : new Redis(redisUrl, { maxRetriesPerRequest: 3 });
    try {
      const nodes = new NodeStore(redis);
      for (let i = 0; i < AGENTS; i++) {
        const name = agentName(i);
        const { command, args } = serviceCommand('node-agent', bundles);
        processes.push(launch(`agent-${name}`, command, args, {
          ...common, ...bus.env('node-agent', name), ...tlsEnv('node-agent'), ...simAgentEnv(name, join(STACK_DIR, 'agents', name)), METRICS_PORT: String(PORTS.metricsBase + 3 + i), ...simTopology(i),
          GANTRY_CHECKPOINT_ADDR: endpoints.checkpoint!, // storage admission for the ranks (POST /v1/storage/* on the per-job endpoint)
          // The agents run from a bundle under .gantry/ here, so the shim is not beside their entry file: the one bootstrap built.
          ...(existsSync(ADMIT_SHIM) && { GANTRY_ADMIT_SHIM: ADMIT_SHIM }),
        }));
        record();
      }
      await waitFor(`${AGENTS} agents registered`, async () => {
        const recs = await nodes.list();
        return recs.filter((r) => r.node.state === NodeState.NODE_STATE_READY).length >= AGENTS;
      });
    } finally {
      redis.disconnect();
    }
  } catch (err) {
    record();
    await down();
    throw err;
  }
  record();
  return readStack()!;
}

export async function down(): Promise<number> {
  const state = readStack();
  if (!state) return 0;
  // Ranks outlive their agents by design, so stop them explicitly (process-group ids).
  for (const p of state.processes.filter((x) => x.name.startsWith('agent-'))) {
    for (const pid of runningRankPids(join(STACK_DIR, 'agents', p.name.slice('agent-'.length)))) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  // Agents and services first, then the infrastructure they use.
  const order = [...state.processes].reverse();
  let stopped = 0;
  for (const p of order) {
    if (!alive(p.pid)) continue;
    try { process.kill(p.pid, 'SIGTERM'); } catch { continue; }
    const deadline = Date.now() + 10_000;
    while (alive(p.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (alive(p.pid)) process.kill(p.pid, 'SIGKILL');
    stopped++;
  }
  rmSync(STATE_FILE, { force: true });
  return stopped;
}

function printEndpoints(s: StackState): void {
  console.log('Gantry local stack is up:');
  for (const [k, v] of Object.entries(s.endpoints)) console.log(`  ${k.padEnd(11)} ${v}`);
  console.log(`  agents      ${AGENTS} simulated 8 x H100 hosts (sim-node-0..${AGENTS - 1})`);
  console.log(`  logs        ${join(STACK_DIR, 'logs')}`);
  console.log('Try: pnpm gantry node list   |   pnpm demo   |   pnpm stack:down');
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const cmd = process.argv[2];
  try {
    if (cmd === 'up') printEndpoints(await up({ ha: process.argv.includes('--ha') }));
    else if (cmd === 'down') console.log(`stopped ${await down()} processes`);
    else { console.error('usage: stack.ts up|down'); process.exitCode = 2; }
  } catch (err) {
    console.error(`stack: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

// A whole Gantry for one test file: real nats-server and redis-server, the scheduler,
// gateway and checkpoint services, and N simulated agents, each a separate process the
// test can kill, pause or restart.
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { NodeState } from '@gantry/proto';
import { NodeStore } from '@gantry/store';
import { portOpen, runningRankPids, serviceCommand, simAgentEnv, simTopology, type ServiceName } from '../../deploy/local/services.js';
import { startNats, startNatsCluster, startRedis, startRedisHa, type NatsCluster, type NatsServer, type RedisHa, type Server } from './infra.js';
import { parseSentinels } from '@gantry/service-kit/config';
import { freePort } from './ports.js';
import { devClientTls, devTlsEnv, ensureDevCerts, type DevCertFiles, type DevCertName } from '../../deploy/local/dev-certs.js';
import { ManagedProcess } from './process.js';
import { BusSecurity } from '../../deploy/local/bus-security.js';
import { connectRedis, natsAuthenticator } from '@gantry/service-kit/connections';
import { createLogger } from '@gantry/service-kit/logger';
import type { ConnectionOptions } from '@nats-io/transport-node';

/** The harness's own Redis connection: Redis is killed on purpose, so its warnings are noise. */
const silentLog = createLogger('test-harness', 'silent');

export interface StackOptions {
  agents?: number;
  /** Scheduler replicas started up front (the first to start leads). */
  schedulers?: number;
  gpusPerAgent?: number;
  heartbeatTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  leaseTtlMs?: number;
  stopGraceSeconds?: number;
  /** Extra environment per process kind. */
  env?: Partial<Record<ServiceName, NodeJS.ProcessEnv>>;
  /** The HA data plane: a three-node NATS cluster (streams with 3 replicas) and Redis with a replica and three sentinels. */
  ha?: boolean;
  /** Extra environment of agent i (after `env`), e.g. its own NATS_URL through a proxy. */
  agentEnv?: (i: number) => NodeJS.ProcessEnv;
  /** Run the agents as this program instead of the sources under tsx (e.g. the installed bundle). */
  agentCommand?: { command: string; args: string[] };
  /**
   * The bus authorisation (deploy/local/bus-security.ts): nats-server admits only the NKEY
   * users made for this stack, each held to its subjects, and agents verify signed commands.
   * Default: on, unless GANTRY_NATS_AUTH=off.
   */
  natsAuth?: boolean;
  /**
   * Internal mutual TLS between the services with a CA made for this stack (dev mode,
   * deploy/local/dev-certs.ts). Default: on, unless GANTRY_INTERNAL_TLS=off.
   */
  internalTls?: boolean;
}


export class TestStack {
  readonly workDir = mkdtempSync(join(tmpdir(), 'gantry-stack-'));
  nats!: Server;
  redisServer!: Server;
  /** With `ha`: the NATS cluster and the Redis primary/replica/sentinels (`nats` and `redisServer` then stand for them as a whole). */
  natsCluster?: NatsCluster;
  redisHa?: RedisHa;
  redis!: Redis;
  schedulers: ManagedProcess[] = [];
  gateway!: ManagedProcess;
  checkpoint!: ManagedProcess;
  agents: ManagedProcess[] = [];
  gatewayAddr = '';
  checkpointAddr = '';
  private readonly opts: Required<Omit<StackOptions, 'env' | 'agentEnv' | 'agentCommand'>> & Pick<StackOptions, 'env' | 'agentEnv' | 'agentCommand'>;
  /** With internal TLS: this stack's CA, and a certificate per process kind and for clients. */
  tlsFiles?: DevCertFiles;

  constructor(opts: StackOptions = {}) {
    this.opts = {
      agents: opts.agents ?? 2,
      schedulers: opts.schedulers ?? 1,
      gpusPerAgent: opts.gpusPerAgent ?? 8,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 4_000,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 500,
      leaseTtlMs: opts.leaseTtlMs ?? 2_000,
      stopGraceSeconds: opts.stopGraceSeconds ?? 2,
      ha: opts.ha ?? false,
      env: opts.env,
      agentEnv: opts.agentEnv,
      agentCommand: opts.agentCommand,
      natsAuth: opts.natsAuth ?? process.env.GANTRY_NATS_AUTH !== 'off',
      internalTls: opts.internalTls ?? process.env.GANTRY_INTERNAL_TLS !== 'off',
    };
  }

  /** INTERNAL_TLS_* for a process holding `name`'s certificate; empty without internal TLS. */
  internalTlsEnv(name: DevCertName): NodeJS.ProcessEnv {
    return this.tlsFiles ? devTlsEnv(this.tlsFiles, name) : {};
  }

  /**
   * The SDK's `tls` option for a client that calls the scheduler or the checkpoint service
   * directly (they ask for a certificate of the internal CA); undefined: plaintext.
   */
  get internalClientTls(): { ca: Buffer; cert: Buffer; key: Buffer } | undefined {
    return this.tlsFiles && devClientTls(this.tlsFiles);
  }

  /** Credentials for a raw gRPC client of `address`: the client certificate for the scheduler and checkpoint service, plaintext for the gateway. */
  credentialsFor(address: string): grpc.ChannelCredentials {
    const tls = address === this.gatewayAddr ? undefined : this.internalClientTls;
    return tls ? grpc.credentials.createSsl(tls.ca, tls.key, tls.cert) : grpc.credentials.createInsecure();
  }

  /** CLI flags to the same effect (`gantry ... ckpt list`). */
  internalClientFlags(): string[] {
    const f = this.tlsFiles;
    return f ? ['--ca', f.ca, '--cert', f.cert('client'), '--key', f.key('client')] : [];
  }

  private common(): NodeJS.ProcessEnv {
    const ha = this.redisHa ? { ...this.redisHa.env(), NATS_STREAM_REPLICAS: '3' } : {};
    return { NATS_URL: this.nats.url, REDIS_URL: this.redisServer.url, LOG_LEVEL: 'debug', METRICS_PORT: '0', ...ha };
  }

  private async startHaInfra(): Promise<void> {
    const [cluster, redisHa] = await Promise.all([startNatsCluster(join(this.workDir, 'nats'), { authFile: this.opts.natsAuth ? this.bus.natsAuthFile : undefined }), startRedisHa(join(this.workDir, 'redis'))]);
    this.natsCluster = cluster;
    this.redisHa = redisHa;
    const whole = (url: string, stop: () => Promise<void>): Server => {
      const no = () => Promise.reject(new Error('an HA stack: kill or restart one member (natsCluster.members, redisHa.servers)'));
      return { url, port: 0, stop, kill: no, restart: no, start: no };
    };
    this.nats = whole(cluster.url, () => cluster.stop());
    this.redisServer = whole(redisHa.url, () => redisHa.stop());
  }

  /** This stack's bus users (used with natsAuth) and command signing keys (always). */
  readonly bus = new BusSecurity(join(this.workDir, 'bus'));

  /**
   * A service's bus credentials (with natsAuth) and command keys; an agent's node gets its
   * user on first use, and nats-server re-reads the users.
   */
  busEnv(kind: ServiceName, node?: string): NodeJS.ProcessEnv {
    if (!this.opts.natsAuth) return this.bus.commandKeyEnv(kind);
    if (kind === 'node-agent' && node && this.bus.addAgent(node)) (this.nats as Partial<NatsServer>).reload?.();
    return this.bus.env(kind, node);
  }

  /** Options for a test's own NATS connection: the operator user (allowed everything) with natsAuth. */
  natsOptions(): ConnectionOptions {
    return { servers: this.nats.url.split(','), ...(this.opts.natsAuth ? { authenticator: natsAuthenticator(this.bus.seedFile({ kind: 'operator' })) } : {}) };
  }

  /** Starts everything; a start that fails stops what it had started (nothing is left running). */
  async start(): Promise<this> {
    try {
      return await this.startAll();
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  private async startAll(): Promise<this> {
    if (this.opts.natsAuth) for (let i = 0; i < this.opts.agents; i++) this.bus.addAgent(this.nodeName(i));
    if (this.opts.internalTls) this.tlsFiles = ensureDevCerts(join(this.workDir, 'tls'));
    if (this.opts.ha) await this.startHaInfra();
    else [this.nats, this.redisServer] = await Promise.all([startNats(join(this.workDir, 'nats'), { configFile: this.opts.natsAuth ? this.bus.natsAuthFile : undefined }), startRedis(join(this.workDir, 'redis'))]);
    this.redis = this.redisHa
      // The services' own connection code (its Sentinel options and its reconnect after
      // ioredis ends a connection mid-failover), without their replica WAIT.
      ? connectRedis({ url: 'redis://', sentinels: parseSentinels(this.redisHa.sentinels), masterName: this.redisHa.masterName, waitReplicas: 0, waitTimeoutMs: 0 }, silentLog)
      : new Redis(this.redisServer.url, { maxRetriesPerRequest: null, lazyConnect: false });
    // The tests kill Redis on purpose; the client reconnects, its errors are noise.
    if (this.redisHa) this.redis.on('error', () => undefined);
    const gwPort = await freePort();
    const ckPort = await freePort();
    this.gatewayAddr = `127.0.0.1:${gwPort}`;
    this.checkpointAddr = `127.0.0.1:${ckPort}`;
    const schedulerPorts: number[] = [];
    for (let i = 0; i < this.opts.schedulers; i++) schedulerPorts.push(await freePort());
    this.schedulerAddrs.push(...schedulerPorts.map((p) => `127.0.0.1:${p}`));
    // The gateway and the checkpoint service only dial the others' known addresses, so they
    // start alongside the schedulers (each process's start-up is seconds of module loading).
    // The agents wait for a scheduler: they register with it, with a growing retry delay.
    const schedulersUp = (async () => { for (const port of schedulerPorts) await this.addScheduler(port); })();
    this.gateway = this.service('gateway', 'gateway', { GATEWAY_GRPC_PORT: String(gwPort), SCHEDULER_ADDR: this.schedulerAddrs.join(','), CHECKPOINT_ADDR: this.checkpointAddr }, () => portOpen(gwPort));
    this.checkpoint = this.service('checkpoint', 'checkpoint', { CHECKPOINT_GRPC_PORT: String(ckPort) }, () => portOpen(ckPort));
    const servicesUp = Promise.all([this.gateway.start(), this.checkpoint.start()]);
    // Both awaited before either can fail alone, so no start-up is left unobserved.
    await Promise.all([schedulersUp, servicesUp.catch(() => undefined)]);
    for (let i = 0; i < this.opts.agents; i++) this.agents.push(this.agentProcess(i));
    await Promise.all([servicesUp, ...this.agents.map((a) => a.start())]);
    return this;
  }

  schedulerAddrs: string[] = [];

  /** Starts one more scheduler replica (the first becomes leader), on `port` or a free one. */
  async addScheduler(port?: number): Promise<ManagedProcess> {
    port ??= await freePort();
    const i = this.schedulers.length;
    if (!this.schedulerAddrs.includes(`127.0.0.1:${port}`)) this.schedulerAddrs.push(`127.0.0.1:${port}`);
    const p = this.service('scheduler', `scheduler-${i}`, {
      SCHEDULER_GRPC_PORT: String(port),
      HEARTBEAT_TIMEOUT_MS: String(this.opts.heartbeatTimeoutMs),
      HEARTBEAT_INTERVAL_MS: String(this.opts.heartbeatIntervalMs),
      LEASE_TTL_MS: String(this.opts.leaseTtlMs),
      CYCLE_INTERVAL_MS: '500',
      COMMAND_RESEND_MS: '1000',
      STOP_GRACE_SECONDS: String(this.opts.stopGraceSeconds),
      INSTANCE_ID: `scheduler-${i}`,
      CHECKPOINT_ADDR: this.checkpointAddr,
    }, () => portOpen(port));
    this.schedulers.push(p);
    await p.start();
    return p;
  }

  nodeName(i: number): string {
    return `node-${i}`;
  }

  agentStateDir(i: number): string {
    return join(this.workDir, 'agents', this.nodeName(i));
  }

  private agentProcess(i: number): ManagedProcess {
    const name = this.nodeName(i);
    return this.service('node-agent', `agent-${name}`, { ...simAgentEnv(name, this.agentStateDir(i), this.opts.gpusPerAgent), ...simTopology(i) }, () => this.nodeReady(name), 45_000, this.opts.agentEnv?.(i));
  }

  private service(kind: ServiceName, name: string, env: NodeJS.ProcessEnv, ready: () => Promise<boolean>, readyTimeoutMs = 45_000, last: NodeJS.ProcessEnv = {}): ManagedProcess {
    const { command, args, cwd } = kind === 'node-agent' && this.opts.agentCommand ? { ...this.opts.agentCommand, cwd: serviceCommand(kind).cwd } : serviceCommand(kind);
    return new ManagedProcess({
      name, command, args, cwd, readyTimeoutMs,
      env: { ...this.common(), ...this.busEnv(kind, env.GANTRY_NODE_NAME), ...this.internalTlsEnv(kind), ...env, ...this.opts.env?.[kind], ...last },
      logFile: join(this.workDir, 'logs', `${name}.log`),
      ready,
    });
  }

  private async nodeReady(name: string): Promise<boolean> {
    const rec = await new NodeStore(this.redis).get(name);
    return rec?.node.state === NodeState.NODE_STATE_READY && rec.heartbeatMs > Date.now() - this.opts.heartbeatTimeoutMs;
  }

  /** Every rank process the agents recorded as running (pids are process-group ids). */
  rankPids(): number[] {
    return this.agents.flatMap((_, i) => runningRankPids(this.agentStateDir(i)));
  }

  logsOf(name: string): string {
    const f = join(this.workDir, 'logs', `${name}.log`);
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  async stop(): Promise<void> {
    const pids = this.rankPids();
    await Promise.all([...this.agents, this.gateway, this.checkpoint, ...this.schedulers].filter(Boolean).map((p) => { p.resume(); return p.stop('SIGTERM', 5_000); }));
    // Ranks outlive their agents by design; a test must not leave any behind.
    for (const pid of pids) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
    this.redis?.disconnect();
    await Promise.all([this.nats?.stop(), this.redisServer?.stop()]);
    if (!process.env.GANTRY_KEEP_TEST_DIRS) rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** Polls until `check` returns a value (not undefined), or fails with `what` after timeoutMs. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

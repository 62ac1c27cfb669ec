// Service configuration comes from environment variables, validated once at start-up. A bad
// value stops the process with one line that names the variable, before anything connects.
import { existsSync } from 'node:fs';
import { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses `env` with a zod object whose keys are the variable names. */
export function loadConfig<S extends z.ZodRawShape>(shape: S, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join('.');
    const raw = env[name];
    const got = raw === undefined ? 'it is not set' : `got ${JSON.stringify(raw)}`;
    return `${name}: ${issue.message} (${got})`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}

/** Building blocks for the env schemas of the services, so every service spells them alike. */
export const env = {
  port: (def: number) => z.coerce.number().int().min(0).max(65535).default(def),
  url: (def?: string) => (def === undefined ? z.string().url() : z.string().url().default(def)),
  ms: (def: number) => z.coerce.number().int().min(1).default(def),
  int: (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def),
  str: (def?: string) => (def === undefined ? z.string().min(1) : z.string().min(1).default(def)),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  host: (def: string) => z.string().min(1).default(def),
};

/** TLS for a service's gRPC endpoint: both files or neither; a client CA turns on mutual TLS. */
export const tlsEnv = {
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
};

/**
 * Mutual TLS between Gantry's own processes (gateway, scheduler, checkpoint service, agents);
 * checked and loaded by internalTls() in internal-tls.ts.
 */
export const internalTlsEnv = {
  /** PEM of the internal CA: peers' certificates must chain to it. */
  INTERNAL_TLS_CA_FILE: z.string().min(1).optional(),
  /** PEM certificate (chain) of this process, signed by the internal CA; serves and dials with it. */
  INTERNAL_TLS_CERT_FILE: z.string().min(1).optional(),
  /** PEM private key of INTERNAL_TLS_CERT_FILE. */
  INTERNAL_TLS_KEY_FILE: z.string().min(1).optional(),
  /**
   * The name checked in the servers' certificates instead of the address's host (e.g. when
   * scheduler replicas are dialled as a list of IPs and share one certificate).
   */
  INTERNAL_TLS_SERVER_NAME: z.string().min(1).max(253).optional(),
};

export function tlsFiles(c: { TLS_CERT_FILE?: string; TLS_KEY_FILE?: string; TLS_CLIENT_CA_FILE?: string }): { certFile: string; keyFile: string; clientCaFile?: string } | undefined {
  if (!c.TLS_CERT_FILE && !c.TLS_KEY_FILE) {
    if (c.TLS_CLIENT_CA_FILE) throw new ConfigError('invalid configuration: TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE');
    return undefined;
  }
  if (!c.TLS_CERT_FILE || !c.TLS_KEY_FILE) throw new ConfigError(`invalid configuration: ${c.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'}: required when ${c.TLS_CERT_FILE ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'} is set`);
  for (const [name, path] of Object.entries({ TLS_CERT_FILE: c.TLS_CERT_FILE, TLS_KEY_FILE: c.TLS_KEY_FILE, TLS_CLIENT_CA_FILE: c.TLS_CLIENT_CA_FILE })) {
    if (path && !existsSync(path)) throw new ConfigError(`invalid configuration: ${name}: file ${path} does not exist`);
  }
  return { certFile: c.TLS_CERT_FILE, keyFile: c.TLS_KEY_FILE, clientCaFile: c.TLS_CLIENT_CA_FILE };
}

/**
 * Checks a comma-separated list of NATS servers (`nats://host:port`, `tls://…`, `ws(s)://…` or a
 * bare `host:port`); returns the reason it is not one, or undefined. Every server of a cluster
 * is listed so a process can reconnect to any of them.
 */
export function natsServersProblem(value: string): string | undefined {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) return 'must be a comma-separated list of NATS servers without empty items';
  for (const item of items) {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(item) ? item : `nats://${item}`;
    let u: URL;
    try { u = new URL(withScheme); } catch { return `${JSON.stringify(item)} is not a server URL`; }
    if (!['nats:', 'tls:', 'ws:', 'wss:'].includes(u.protocol)) return `${JSON.stringify(item)}: scheme must be nats, tls, ws or wss`;
    if (!u.hostname) return `${JSON.stringify(item)} has no host`;
    if (u.pathname && u.pathname !== '/' && u.pathname !== '') return `${JSON.stringify(item)} must not have a path`;
  }
  if (new Set(items).size !== items.length) return 'lists a server twice';
  return undefined;
}

/** Splits a validated NATS server list. */
export function natsServers(value: string): string[] {
  return value.split(',').map((s) => s.trim());
}

/** Checks a comma-separated list of Sentinel `host:port` addresses; returns the reason it is not one. */
export function sentinelsProblem(value: string): string | undefined {
  const items = value.split(',').map((s) => s.trim());
  for (const item of items) {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return `${JSON.stringify(item)} is not host:port`;
  }
  return undefined;
}

export function parseSentinels(value: string): { host: string; port: number }[] {
  return value.split(',').map((s) => {
    const item = s.trim();
    const i = item.lastIndexOf(':');
    return { host: item.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(item.slice(i + 1)) };
  });
}

const natsServerList = (def: string) => z.string().min(1).default(def).superRefine((v, ctx) => {
  const problem = natsServersProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Shared by every control-plane service. */
export const commonEnv = {
  LOG_LEVEL: env.logLevel(),
  /** One NATS server or every server of a cluster, comma-separated; the client reconnects across them. */
  NATS_URL: natsServerList('nats://127.0.0.1:4222'),
  /**
   * The service's NATS credentials: a file holding its NKEY user seed (`SU…`, what the bus
   * authorisation of docs/security.md gives each service) or a decentralised `.creds` file.
   * Unset: connect without credentials (a server without authorisation).
   */
  NATS_CREDS_FILE: z.string().min(1).optional(),
  /** Replicas of every JetStream stream (and so of its consumers): 1 on a single server, 3 on a three-node cluster. */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** Redis by URL; ignored for the address when REDIS_SENTINELS is set (its password and db still apply). */
  REDIS_URL: env.str('redis://127.0.0.1:6379'),
  /** Sentinels, `host:port` comma-separated: the services ask them for the current primary. */
  REDIS_SENTINELS: z.string().min(1).optional().superRefine((v, ctx) => {
    const problem = v === undefined ? undefined : sentinelsProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  /** The master name the sentinels monitor (`sentinel monitor <name> …`); required with REDIS_SENTINELS. */
  REDIS_SENTINEL_MASTER: z.string().regex(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, ., _ or -').optional(),
  /** Password of the sentinels themselves (`requirepass` in sentinel.conf), when they have one. */
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /**
   * After the commits that matter (placement, rank exit, GPU release, checkpoint commit, a new
   * leader epoch), wait until this many replicas have them (Redis WAIT) before going on. Default:
   * 1 with Sentinel, 0 without.
   */
  REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).max(16).optional(),
  /** How long such a commit waits for its replicas before it fails (and is retried), ms. */
  REDIS_WAIT_TIMEOUT_MS: env.ms(2_000),
  METRICS_PORT: env.port(0),
  BIND_HOST: env.host('127.0.0.1'),
  /** Mutual TLS between the services (internal-tls.ts): CA, certificate and key, all or none. */
  ...internalTlsEnv,
};

export interface RedisTargetConfig {
  REDIS_URL: string;
  REDIS_SENTINELS?: string;
  REDIS_SENTINEL_MASTER?: string;
  REDIS_SENTINEL_PASSWORD?: string;
  REDIS_WAIT_REPLICAS?: number;
  REDIS_WAIT_TIMEOUT_MS?: number;
}

/** Where a service's Redis is: a URL, or sentinels and a master name. */
export interface RedisTarget {
  url: string;
  sentinels?: { host: string; port: number }[];
  masterName?: string;
  sentinelPassword?: string;
  /** Replicas a commit that matters waits for (0 = none). */
  waitReplicas: number;
  waitTimeoutMs: number;
}

/** The Redis target of a loaded config; throws ConfigError when only half of Sentinel is set. */
export function redisTarget(c: RedisTargetConfig): RedisTarget {
  if (Boolean(c.REDIS_SENTINELS) !== Boolean(c.REDIS_SENTINEL_MASTER)) {
    throw new ConfigError(`invalid configuration: ${c.REDIS_SENTINELS ? 'REDIS_SENTINEL_MASTER' : 'REDIS_SENTINELS'}: required when ${c.REDIS_SENTINELS ? 'REDIS_SENTINELS' : 'REDIS_SENTINEL_MASTER'} is set`);
  }
  const sentinels = c.REDIS_SENTINELS ? parseSentinels(c.REDIS_SENTINELS) : undefined;
  if (sentinels && /^rediss:/i.test(c.REDIS_URL)) {
    // Not built or tested yet: say so rather than connect in plaintext.
    throw new ConfigError('invalid configuration: REDIS_URL: TLS (rediss://) through Sentinel is not supported; use redis:// with REDIS_SENTINELS');
  }
  return {
    url: c.REDIS_URL,
    ...(sentinels ? { sentinels, masterName: c.REDIS_SENTINEL_MASTER } : {}),
    ...(c.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: c.REDIS_SENTINEL_PASSWORD } : {}),
    waitReplicas: c.REDIS_WAIT_REPLICAS ?? (sentinels ? 1 : 0),
    waitTimeoutMs: c.REDIS_WAIT_TIMEOUT_MS ?? 2_000,
  };
}

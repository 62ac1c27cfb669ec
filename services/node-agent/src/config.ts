// Agent configuration: an optional YAML file (GANTRY_AGENT_CONFIG, default
// /etc/gantry/agent.yaml when it exists) overridden by environment variables, validated
// once. A bad value stops the agent with one line naming the setting.
import { accessSync, closeSync, constants as fsConstants, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, natsServersProblem } from '@gantry/service-kit/config';
import { commandVerifyKeys, SUBJECT_TOKEN } from '@gantry/bus';
import { internalTls, type InternalTlsConfig } from '@gantry/service-kit/internal-tls';
import { rankUserRefProblem } from './runner/rank-user.js';

// Node names become NATS subject tokens and Redis key parts.
const name = z.string().regex(SUBJECT_TOKEN, 'must be letters, digits, - or _ (at most 128)');

/** A rank user as written in the config: a user name, or uid[:gid]. */
const rankUser = z.string().superRefine((v, ctx) => {
  const problem = rankUserRefProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
/** Per tenant: each one is looked up (getent) for a job naming a user not listed verbatim. */
const MAX_SPEC_USERS = 64;
/** YAML true/false, or the strings an environment variable carries. */
const flag = z.union([z.boolean(), z.enum(['true', 'false', '1', '0'])], { error: 'must be true or false' }).transform((v) => v === true || v === 'true' || v === '1');

export const agentConfigSchema = z.object({
  node: name,
  /** Address other ranks use to reach this host (MASTER_ADDR when it runs rank 0). */
  address: z.string().min(1),
  /** One NATS server or every server of a cluster, comma-separated; the agent reconnects across them. */
  natsUrl: z.string().min(1).superRefine((v, ctx) => {
    const problem = natsServersProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  natsCredsFile: z.string().optional(),
  /**
   * PEM file with the scheduler's Ed25519 public key(s): every command must carry a signature
   * by one of them (two during a key rotation; docs/security.md). Required: an agent that
   * cannot verify commands would run whatever reaches its command subject.
   */
  schedulerPublicKeyFile: z.string({ error: 'required (or SCHEDULER_PUBLIC_KEY_FILE): the scheduler\'s command signing public key (PEM), see docs/security.md' }).min(1).superRefine((file, ctx) => {
    try {
      commandVerifyKeys(readFileSync(file, 'utf8'));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `${file}: ${(err as Error).message}` });
    }
  }),
  stateDir: z.string().min(1),
  /**
   * The checkpoint service's gRPC address (host:port) for storage admission on the per-job
   * endpoint (POST /v1/storage/*); optional: without it those routes answer 501.
   */
  checkpointAddr: z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port').optional(),
  /**
   * Internal mutual TLS for the agent's gRPC calls (today: the checkpoint service's
   * StorageService), all three files or none; checked when the agent starts (docs/security.md).
   */
  internalTls: z.object({
    caFile: z.string().min(1),
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    serverName: z.string().min(1).max(253),
  }).partial().default({}),
  /**
   * libgantry-admit.so (pnpm build:admit; install-agent.sh puts it beside the agent bundle):
   * preloaded into the ranks of jobs with checkpoint.admit_flushes, it holds their checkpoint
   * flushes until storage admits them (docs/storage.md). Default: libgantry-admit.so beside the
   * agent's entry file when it is there. Without it such jobs' ranks are refused, not run
   * unadmitted.
   */
  /**
   * gantry-spawn (pnpm build:spawn; install-agent.sh puts it beside the agent bundle): the small
   * process that forks the ranks' wrappers, much cheaper than forking them from the agent
   * (runner/spawn-helper.ts). Default: gantry-spawn beside the agent's entry file when it is
   * there; "off", or none found: the agent forks them itself.
   */
  spawnHelper: z.string().min(1).superRefine((file, ctx) => {
    if (file === 'off') return;
    const problem = executableProblem(file);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }).optional(),
  admitShim: z.string().min(1).superRefine((file, ctx) => {
    const problem = sharedObjectProblem(file);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }).optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  metricsPort: z.coerce.number().int().min(0).max(65535).default(0),
  bindHost: z.string().default('127.0.0.1'),
  heartbeatIntervalMs: z.coerce.number().int().min(100).default(2_000),
  telemetryIntervalMs: z.coerce.number().int().min(500).default(10_000),
  /** How often the GPU inventory is fingerprinted again (a GPU that falls off the bus leaves it). */
  inventoryIntervalMs: z.coerce.number().int().min(500).default(30_000),
  /** How long ranks keep running while the control plane is unreachable. */
  partitionGraceMs: z.coerce.number().int().min(0).default(15 * 60_000),
  /** Disk space for reports held while NATS is unreachable; the oldest telemetry goes first. */
  reportBufferBytes: z.coerce.number().int().min(64 * 1024).default(256 * 1024 * 1024),
  /** Disk kept per rank output stream once shipped; beyond it the file is emptied (0 = never). */
  rankLogMaxBytes: z.coerce.number().int().min(0).default(1024 * 1024 * 1024),
  topology: z.object({
    nvlinkDomain: z.string().default(''),
    leafSwitch: z.string().default(''),
    spine: z.string().default(''),
    rack: z.string().default(''),
    nicClass: z.string().default(''),
  }).default({ nvlinkDomain: '', leafSwitch: '', spine: '', rack: '', nicClass: '' }),
  labels: z.record(z.string(), z.string()).default({}),
  /**
   * The Unix user ranks run as (runner/rank-user.ts): the job's run_as_user where specUsers
   * allows it for the tenant, else per tenant, else `user`, else the agent's own; uid 0 is
   * refused unless allowRoot (docs/security.md).
   */
  ranks: z.object({
    user: rankUser.optional(),
    tenants: z.record(name, rankUser).default({}),
    /** Tenant -> the users its jobs may name in JobSpec.run_as_user; unlisted tenants may name none. */
    specUsers: z.record(name, z.array(rankUser, { error: 'must be a list of user names or uid[:gid]' }).max(MAX_SPEC_USERS, `must list at most ${MAX_SPEC_USERS} users`)).default({}),
    allowRoot: flag.default(false),
    /** auto: per-rank devices cgroups denying other GPUs where the host has cgroup v1 (runner/gpu-devices.ts). */
    gpuIsolation: z.enum(['auto', 'off']).default('auto'),
  }).default({ tenants: {}, specUsers: {}, allowRoot: false, gpuIsolation: 'auto' }),
  device: z.object({
    /** auto: nvidia-smi when the binary exists, else the simulated backend. */
    backend: z.enum(['auto', 'sim', 'nvidia-smi']).default('auto'),
    simGpus: z.coerce.number().int().min(0).max(16).default(8),
    simGpuModel: z.string().default('NVIDIA H100 80GB HBM3'),
    simGpuMemoryMib: z.coerce.number().int().min(1).default(81559),
    simScenario: z.string().optional(),
    /**
     * nvidia-smi: read `--query-gpu` from one long-running `-lms` loop at the telemetry interval
     * instead of a fork per cycle (33-38 % less CPU per cycle on an H200, driver 580:
     * docs/agent.md); readings are then up to one interval old.
     */
    smiLoop: flag.default(true),
  }).default({ backend: 'auto', simGpus: 8, simGpuModel: 'NVIDIA H100 80GB HBM3', simGpuMemoryMib: 81559, smiLoop: true }),
});

export type AgentConfig = z.infer<typeof agentConfigSchema>;

/** Environment variables that override the file, and the setting each one sets. */
const ENV_OVERRIDES: Record<string, string> = {
  GANTRY_NODE_NAME: 'node',
  GANTRY_NODE_ADDRESS: 'address',
  NATS_URL: 'natsUrl',
  NATS_CREDS_FILE: 'natsCredsFile',
  GANTRY_CHECKPOINT_ADDR: 'checkpointAddr',
  GANTRY_ADMIT_SHIM: 'admitShim',
  GANTRY_SPAWN_HELPER: 'spawnHelper',
  INTERNAL_TLS_CA_FILE: 'internalTls.caFile',
  INTERNAL_TLS_CERT_FILE: 'internalTls.certFile',
  INTERNAL_TLS_KEY_FILE: 'internalTls.keyFile',
  INTERNAL_TLS_SERVER_NAME: 'internalTls.serverName',
  SCHEDULER_PUBLIC_KEY_FILE: 'schedulerPublicKeyFile',
  GANTRY_RANK_USER: 'ranks.user',
  GANTRY_RANKS_ALLOW_ROOT: 'ranks.allowRoot',
  GANTRY_GPU_ISOLATION: 'ranks.gpuIsolation',
  GANTRY_STATE_DIR: 'stateDir',
  LOG_LEVEL: 'logLevel',
  METRICS_PORT: 'metricsPort',
  BIND_HOST: 'bindHost',
  HEARTBEAT_INTERVAL_MS: 'heartbeatIntervalMs',
  TELEMETRY_INTERVAL_MS: 'telemetryIntervalMs',
  INVENTORY_INTERVAL_MS: 'inventoryIntervalMs',
  PARTITION_GRACE_MS: 'partitionGraceMs',
  REPORT_BUFFER_BYTES: 'reportBufferBytes',
  RANK_LOG_MAX_BYTES: 'rankLogMaxBytes',
  TOPOLOGY_NVLINK_DOMAIN: 'topology.nvlinkDomain',
  TOPOLOGY_LEAF_SWITCH: 'topology.leafSwitch',
  TOPOLOGY_SPINE: 'topology.spine',
  TOPOLOGY_RACK: 'topology.rack',
  TOPOLOGY_NIC_CLASS: 'topology.nicClass',
  DEVICE_BACKEND: 'device.backend',
  SIM_GPUS: 'device.simGpus',
  SIM_GPU_MODEL: 'device.simGpuModel',
  SIM_GPU_MEMORY_MIB: 'device.simGpuMemoryMib',
  SIM_SCENARIO: 'device.simScenario',
  GANTRY_NVIDIA_SMI_LOOP: 'device.smiLoop',
};

/** Why `file` cannot be preloaded (the dynamic loader would skip it with a warning), or undefined. */
export function sharedObjectProblem(file: string): string | undefined {
  if (!isAbsolute(file)) return `${file} must be an absolute path (ranks run in other working directories)`;
  let fd: number | undefined;
  try {
    if (!statSync(file).isFile()) return `${file} is not a file`;
    fd = openSync(file, 'r');
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return `${file} is not an ELF shared object (build it with pnpm build:admit)`;
  } catch (err) {
    return `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (build it with pnpm build:admit)' : (err as Error).message}`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return undefined;
}

/** Why `file` cannot be run as the rank spawner, or undefined. */
export function executableProblem(file: string): string | undefined {
  if (!isAbsolute(file)) return `${file} must be an absolute path (or off)`;
  try {
    if (!statSync(file).isFile()) return `${file} is not a file`;
    accessSync(file, fsConstants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return `${file}: ${code === 'ENOENT' ? 'no such file (build it with pnpm build:spawn)' : code === 'EACCES' ? 'not executable' : (err as Error).message}`;
  }
  return undefined;
}

/** gantry-spawn beside the agent's entry file (dist/ for the bundle), if it is there and usable. */
function defaultSpawnHelper(): string | undefined {
  const entry = process.argv[1];
  if (!entry) return undefined;
  const file = join(dirname(resolve(entry)), 'gantry-spawn');
  return existsSync(file) && !executableProblem(file) ? file : undefined;
}

/** libgantry-admit.so beside the agent's entry file (dist/ for the bundle), if it is there and usable. */
function defaultAdmitShim(): string | undefined {
  const entry = process.argv[1];
  if (!entry) return undefined;
  const file = join(dirname(resolve(entry)), 'libgantry-admit.so');
  return existsSync(file) && !sharedObjectProblem(file) ? file : undefined;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

/**
 * The validated configuration. `commandKey: false` is for the `sim` subcommands, which only
 * find the state folder of a running agent and never take commands: no public key needed.
 */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env, opts: { commandKey?: boolean } = {}): AgentConfig {
  const file = env.GANTRY_AGENT_CONFIG ?? (existsSync('/etc/gantry/agent.yaml') ? '/etc/gantry/agent.yaml' : undefined);
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      raw = (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown> | null) ?? {};
    } catch (err) {
      throw new ConfigError(`cannot read agent config ${file}: ${(err as Error).message}`);
    }
  }
  raw.node ??= hostname().split('.')[0];
  raw.address ??= hostname();
  raw.natsUrl ??= 'nats://127.0.0.1:4222';
  raw.stateDir ??= '/var/lib/gantry-agent';
  raw.admitShim ??= defaultAdmitShim();
  raw.spawnHelper ??= defaultSpawnHelper();
  const envNames = new Map<string, string>();
  for (const [variable, path] of Object.entries(ENV_OVERRIDES)) {
    const v = env[variable];
    if (v !== undefined && v !== '') { setPath(raw, path, v); envNames.set(path, variable); }
  }
  const schema = opts.commandKey === false ? agentConfigSchema.extend({ schedulerPublicKeyFile: z.string().default('') }) : agentConfigSchema;
  const res = schema.safeParse(raw);
  if (res.success) {
    // Unusable TLS files stop the agent here, in one line, not at its first gRPC call.
    internalTls(internalTlsVariables(res.data.internalTls));
    return res.data;
  }
  const problems = res.error.issues.map((i) => {
    const path = i.path.join('.');
    const source = envNames.has(path) ? `${envNames.get(path)} (${path})` : `${path}${file ? ` in ${file}` : ''}`;
    // A bad map key (a tenant name): zod's own message is only "Invalid key in record".
    const message = i.code === 'invalid_key' && i.issues[0] ? `key ${i.issues[0].message}` : i.message;
    return `${source}: ${message}`;
  });
  throw new ConfigError(`invalid agent configuration: ${problems.join('; ')}`);
}

/** agent.yaml's internalTls as the INTERNAL_TLS_* settings service-kit checks and loads. */
export function internalTlsVariables(t: AgentConfig['internalTls']): InternalTlsConfig {
  return { INTERNAL_TLS_CA_FILE: t.caFile, INTERNAL_TLS_CERT_FILE: t.certFile, INTERNAL_TLS_KEY_FILE: t.keyFile, INTERNAL_TLS_SERVER_NAME: t.serverName };
}

// Storage targets and the admission controller's settings, from the environment:
//
//   STORAGE_TARGETS        JSON array of targets (or STORAGE_TARGETS_FILE: a file holding it)
//   STORAGE_CONTROL_MS     controller interval (default 10000, the agents' telemetry interval)
//   STORAGE_HTTP_PORT      serve the JSON/HTTP mapping of StorageService on this port (unset: off;
//                          0: any free port), on STORAGE_HTTP_HOST (default BIND_HOST, else 127.0.0.1)
//   SCHEDULER_ADDR         scheduler (or gateway) address(es) for NodeService telemetry and
//                          cluster health; unset: pools stay at their configured initial size
//
// A target: { "name": "ckpt", "mountPrefix": "/mnt/ckpt", "serverExport": "nfs1:/export/ckpt",
//   "writeBytesPerSecond": 250e9, "readBytesPerSecond": 700e9, "rpcSlots": 128, "clientBytesPerSecond": 25e9,
//   "leaseTtlMs": 30000, "write": { "initial": 32, "min": 1, "max": 480, "perNode": 1 },
//   "read": { ..., "initialCoversNodes": true },
//   "aimd": { "rttHighMs": 20, ... } }. Defaults are in the schema below; every problem is
// reported in one line naming the target and the field.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '@gantry/service-kit';
import { STORAGE_TARGET_NAME } from '@gantry/store';
import { DEFAULT_AIMD, type AimdParams, type PoolBounds } from './storage-admission.js';

const bounds = (initial: number, coversNodes: boolean) =>
  z.object({
    initial: z.number().int().min(0).default(initial),
    min: z.number().int().min(0).default(1),
    max: z.number().int().min(1).default(4096),
    // 0: no per-node cap. One flushing writer (or one reader) already has its node's transport.
    perNode: z.number().int().min(0).default(1),
    // Reads: one reader per node keeps only its readahead in flight, so the pool starts at one
    // share per node that reports a mount; writes: a flush fills the node's transport at once
    // (PoolBounds.initialCoversNodes).
    initialCoversNodes: z.boolean().default(coversNodes),
  }).strict().refine((b) => b.min <= b.max && b.initial >= b.min && b.initial <= b.max, { message: 'needs min <= initial <= max' });

const aimd = z.object({
  increase: z.number().positive(),
  decrease: z.number().gt(0).lt(1),
  backlogHigh: z.number().min(0),
  rttHighMs: z.number().positive(),
  slotUtilizationHigh: z.number().gt(0).max(1),
  saturatedShare: z.number().gt(0).max(1),
  capacityHeadroom: z.number().gt(0).max(1),
  holdAfterDecrease: z.number().int().min(0),
  degradedShare: z.number().gt(0).max(1),
  idleSteps: z.number().int().min(1),
}).strict().partial();

const target = z.object({
  name: z.string().regex(STORAGE_TARGET_NAME, 'lowercase letters, digits, ".", "_" and "-", up to 63'),
  mountPrefix: z.string().startsWith('/', 'an absolute path'),
  serverExport: z.string().min(1).optional(),
  writeBytesPerSecond: z.number().positive(),
  readBytesPerSecond: z.number().positive(),
  rpcSlots: z.number().int().min(1).max(65536).default(128),
  // One client node's link to the server (its NIC), when known: lets the controller tell
  // saturated transports that should move more from nodes at their own link's limit.
  clientBytesPerSecond: z.number().positive().optional(),
  leaseTtlMs: z.number().int().min(500).max(3_600_000).default(30_000),
  write: bounds(32, false).default({ initial: 32, min: 1, max: 4096, perNode: 1, initialCoversNodes: false }),
  read: bounds(64, true).default({ initial: 64, min: 1, max: 4096, perNode: 1, initialCoversNodes: true }),
  aimd: aimd.default({}),
}).strict();

export interface StorageTargetConfig {
  name: string;
  mountPrefix: string;
  /** server:export as the health detector names it; derived from the name when not given. */
  serverExport: string;
  writeBytesPerSecond: number;
  readBytesPerSecond: number;
  rpcSlots: number;
  /** One client node's link (NIC) to the server; undefined: not configured. */
  clientBytesPerSecond: number | undefined;
  leaseTtlMs: number;
  write: PoolBounds;
  read: PoolBounds;
  aimd: AimdParams;
}

export interface StorageConfig {
  targets: StorageTargetConfig[];
  controlIntervalMs: number;
  schedulerAddr: string | undefined;
  httpPort: number | undefined;
  httpHost: string;
}

/** Parses the targets' JSON (an array); throws ConfigError naming the variable, target and field. */
export function parseStorageTargets(json: string, variable = 'STORAGE_TARGETS'): StorageTargetConfig[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${variable}: not JSON (${(err as Error).message})`);
  }
  const res = z.array(target).safeParse(raw);
  if (!res.success) {
    const problems = res.error.issues.map((i) => {
      const [idx, ...field] = i.path;
      const name = typeof idx === 'number' && Array.isArray(raw) ? (raw[idx] as { name?: unknown } | undefined)?.name : undefined;
      const where = typeof idx === 'number' ? `target ${typeof name === 'string' ? JSON.stringify(name) : `#${idx}`}` : 'the list';
      return `${where}${field.length ? ` ${field.join('.')}` : ''}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration: ${variable}: ${problems.join('; ')}`);
  }
  const names = new Set<string>();
  for (const t of res.data) {
    if (names.has(t.name)) throw new ConfigError(`invalid configuration: ${variable}: target ${JSON.stringify(t.name)} is listed twice`);
    names.add(t.name);
  }
  return res.data.map((t) => ({
    ...t,
    serverExport: t.serverExport ?? t.name,
    clientBytesPerSecond: t.clientBytesPerSecond,
    aimd: { ...DEFAULT_AIMD, ...Object.fromEntries(Object.entries(t.aimd).filter(([, v]) => v !== undefined)) } as AimdParams,
  }));
}

export function loadStorageConfig(source: NodeJS.ProcessEnv = process.env): StorageConfig {
  let targets: StorageTargetConfig[] = [];
  if (source.STORAGE_TARGETS && source.STORAGE_TARGETS_FILE) {
    throw new ConfigError('invalid configuration: STORAGE_TARGETS and STORAGE_TARGETS_FILE: set one, not both');
  }
  if (source.STORAGE_TARGETS) targets = parseStorageTargets(source.STORAGE_TARGETS);
  else if (source.STORAGE_TARGETS_FILE) {
    let text: string;
    try {
      text = readFileSync(source.STORAGE_TARGETS_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`invalid configuration: STORAGE_TARGETS_FILE: cannot read ${source.STORAGE_TARGETS_FILE} (${(err as Error).message})`);
    }
    targets = parseStorageTargets(text, 'STORAGE_TARGETS_FILE');
  }
  const ms = source.STORAGE_CONTROL_MS ?? '10000';
  const controlIntervalMs = Number(ms);
  if (!Number.isInteger(controlIntervalMs) || controlIntervalMs < 100) {
    throw new ConfigError(`invalid configuration: STORAGE_CONTROL_MS: an integer of at least 100 ms (got ${JSON.stringify(ms)})`);
  }
  const addr = source.SCHEDULER_ADDR?.trim();
  let httpPort: number | undefined;
  if (source.STORAGE_HTTP_PORT !== undefined && source.STORAGE_HTTP_PORT !== '') {
    httpPort = Number(source.STORAGE_HTTP_PORT);
    if (!Number.isInteger(httpPort) || httpPort < 0 || httpPort > 65535) {
      throw new ConfigError(`invalid configuration: STORAGE_HTTP_PORT: a port number (got ${JSON.stringify(source.STORAGE_HTTP_PORT)})`);
    }
  }
  const httpHost = source.STORAGE_HTTP_HOST || source.BIND_HOST || '127.0.0.1';
  return { targets, controlIntervalMs, schedulerAddr: addr ? addr : undefined, httpPort, httpHost };
}

// Lua scripts are loaded from lua/*.lua and run with EVALSHA (ioredis falls back to EVAL
// after a Redis restart flushed the script cache).
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { awaitReplicas } from './durability.js';

const load = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** The same commit for several jobs per call: commit-job.lua's function, then commit-jobs.lua in place of its last line (which runs it once). */
function commitJobsLua(): string {
  const single = load('commit-job');
  const batch = single.replace(/return commitJob\(0, 0\)\s*$/, () => load('commit-jobs'));
  if (batch === single) throw new Error('commit-job.lua no longer ends with "return commitJob(0, 0)"');
  return batch;
}

const scripts = {
  gantrySubmitJob: { lua: load('submit-job'), keys: 8 },
  gantryIndexJob: { lua: load('index-job'), keys: 1 },
  gantryCommitJob: { lua: load('commit-job'), keys: undefined },
  gantryCommitJobs: { lua: commitJobsLua(), keys: undefined },
  gantryCommitNode: { lua: load('commit-node'), keys: 7 },
  gantryLease: { lua: load('lease'), keys: 3 },
  gantryReleaseLease: { lua: load('release-lease'), keys: 1 },
  gantryEpochFloor: { lua: load('epoch-floor'), keys: 3 },
  gantryReleaseGpus: { lua: load('release-gpus'), keys: undefined },
  gantryRecordTelemetry: { lua: load('record-telemetry'), keys: 3 },
  gantryRecordTelemetryChecked: { lua: load('record-telemetry-checked'), keys: undefined },
  gantryOutboxNext: { lua: load('outbox-next'), keys: 2 },
  gantryCheckpointBegin: { lua: load('checkpoint-begin'), keys: 3 },
  gantryCheckpointReportShard: { lua: load('checkpoint-report-shard'), keys: 1 },
  gantryCheckpointCommit: { lua: load('checkpoint-commit'), keys: 3 },
  gantryCheckpointAbandon: { lua: load('checkpoint-abandon'), keys: 1 },
  gantryCheckpointObserve: { lua: load('checkpoint-observe'), keys: 5 },
  gantryCheckpointDelete: { lua: load('checkpoint-delete'), keys: 3 },
  gantryCheckpointHset: { lua: load('checkpoint-hset'), keys: 2 },
  gantryCheckpointEvent: { lua: load('checkpoint-event'), keys: 2 },
  gantryCheckpointFinishJob: { lua: load('checkpoint-finish-job'), keys: 6 },
  gantryNodeReads: { lua: load('node-reads'), keys: undefined },
  gantryJobRevisions: { lua: load('job-revisions'), keys: undefined },
  gantryNodeHeartbeatReads: { lua: load('node-heartbeat-reads'), keys: undefined },
} as const;

export type ScriptName = keyof typeof scripts;

/**
 * Scripts whose writes must survive a Redis failover before the caller acts on them (see
 * durability.ts): job submission and transitions (placement, rank exits), node transitions,
 * GPU releases and the checkpoint registry. The lease waits in LeaderLease, on a new epoch only.
 */
const DURABLE: ReadonlySet<ScriptName> = new Set<ScriptName>([
  'gantrySubmitJob', 'gantryCommitJob', 'gantryCommitJobs', 'gantryCommitNode', 'gantryReleaseGpus',
  'gantryCheckpointBegin', 'gantryCheckpointCommit', 'gantryCheckpointAbandon', 'gantryCheckpointObserve', 'gantryCheckpointDelete',
]);
type ScriptArg = string | Buffer | number;

/** Registers the scripts on a connection (idempotent) and returns a typed caller. */
export function scriptRunner(redis: Redis) {
  const r = redis as Redis & Record<string, (...args: ScriptArg[]) => Promise<unknown>>;
  for (const [name, s] of Object.entries(scripts)) {
    if (typeof r[name] !== 'function') {
      redis.defineCommand(name, s.keys === undefined ? { lua: s.lua } : { lua: s.lua, numberOfKeys: s.keys });
    }
  }
  return {
    async run(name: ScriptName, keys: string[], args: ScriptArg[]): Promise<unknown> {
      const fn = r[name]!.bind(redis);
      const s = scripts[name];
      const res = await (s.keys === undefined ? fn(keys.length, ...keys, ...args) : fn(...keys, ...args));
      if (DURABLE.has(name)) await awaitReplicas(redis);
      return res;
    },
    /** run() with the reply's strings as Buffers (for binary payloads). */
    async runBuffer(name: ScriptName, keys: string[], args: ScriptArg[]): Promise<unknown> {
      const fn = r[`${name}Buffer`]!.bind(redis);
      const s = scripts[name];
      const res = await (s.keys === undefined ? fn(keys.length, ...keys, ...args) : fn(...keys, ...args));
      if (DURABLE.has(name)) await awaitReplicas(redis);
      return res;
    },
    /**
     * Several script calls written in one pipeline (one socket write, one round trip), each
     * still its own atomic script; then one replica wait for all of them when any is durable.
     * Each call's reply or error, in order. A failed replica wait rejects the whole batch:
     * any of its writes may be lost in a failover.
     */
    async runMany(calls: readonly ScriptCall[]): Promise<ScriptResult[]> {
      if (calls.length === 0) return [];
      const p = redis.pipeline() as unknown as Record<string, (...args: ScriptArg[]) => unknown> & { exec(): Promise<[Error | null, unknown][] | null> };
      for (const c of calls) {
        const s = scripts[c.name];
        if (s.keys === undefined) p[c.name]!(c.keys.length, ...c.keys, ...c.args);
        else p[c.name]!(...c.keys, ...c.args);
      }
      const res = (await p.exec()) ?? [];
      if (calls.some((c) => DURABLE.has(c.name))) await awaitReplicas(redis);
      return calls.map((_, i) => {
        const [err, value] = res[i] ?? [new Error('no reply from Redis for a pipelined script'), undefined];
        return err ? { ok: false, error: err } : { ok: true, value };
      });
    },
  };
}

export interface ScriptCall {
  name: ScriptName;
  keys: string[];
  args: ScriptArg[];
}

export type ScriptResult = { ok: true; value: unknown } | { ok: false; error: Error };

export type ScriptRunner = ReturnType<typeof scriptRunner>;

// Typed access to nodes in Redis: the node record (CAS on revision, with its outbox event),
// the heartbeat time, and the per-GPU allocation hash that makes double-booking impossible.
import type { Redis } from 'ioredis';
import { GpuAllocation, Node, NodeState, canTransitionNode, nodeStateName } from '@gantry/proto';
import { subjects } from '@gantry/bus';
import { keys, parseAllocationOwner } from './keys.js';
import { scriptRunner, type ScriptResult, type ScriptRunner } from './scripts.js';
import { READ_CHUNK, chunked } from './chunks.js';
import { nodeEvent } from './events.js';
import { changesHead, changesSince, type Changes } from './change-stream.js';
import { FencedError, StaleWriteError } from './errors.js';
import { InvalidTransitionError, type GpuRef } from './jobs.js';

/** Entries kept in a node's event log (XIDs, health decisions, state changes). */
export const NODE_EVENT_LOG_CAP = 1000;

export interface NodeRecord {
  node: Node;
  rev: number;
  /** Last heartbeat, ms since epoch, as the scheduler received it. */
  heartbeatMs: number;
  instanceId: string;
  /** The agent instance registered before `instanceId` ('' when none), and when `instanceId` started (ms, 0 = unknown). */
  previousInstanceId?: string;
  instanceSinceMs?: number;
  allocations: GpuAllocation[];
}

/** The node's registered agent process and the one before it (see commit-node.lua). */
export interface NodeInstances {
  current: string;
  previous: string;
  /** When `current` started, ms (the agent's clock); 0 when unknown. */
  sinceMs: number;
}

export interface NodeCommit {
  prev: NodeRecord | undefined;
  next: Node;
  reason: string;
  epoch?: number;
  heartbeatMs?: number;
  instanceId?: string;
  /** When the agent instance in `instanceId` started, ms; recorded when the instance changes. */
  instanceSinceMs?: number;
  now?: Date;
  /**
   * Record and publish an event even though the state stays (an operator's cordon or
   * uncordon, a held node's new reason): every decision about a node shows in its history.
   */
  event?: boolean;
}

/** A parsed record and what identifies its version: the revision, and the agent instance's start (a record written anew after Redis lost it starts again at revision 1). */
export interface ParsedNode {
  rev: number;
  node: Node;
  since?: string;
  /** The allocation hash as last read (field, value, ...) and what it parsed to: reused while it reads the same. */
  allocFlat?: string[];
  allocations?: GpuAllocation[];
}

function sameStrings(a: readonly string[] | undefined, b: readonly string[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether a parsed record is the version read now (a cache entry without `since` is judged by revision alone). */
function current(known: ParsedNode | undefined, rev: string | null | undefined, since: string | null | undefined): boolean {
  return known !== undefined && known.rev === Number(rev) && (known.since === undefined || known.since === (since ?? ''));
}

export class NodeStore {
  private readonly scripts: ScriptRunner;
  /**
   * list()'s parsed records: every scheduling pass and health window lists all nodes, and
   * reading and parsing every record's JSON each time grew with the cluster (10,000 nodes:
   * megabytes per pass) while few records change between passes.
   */
  private readonly listed = new Map<string, ParsedNode>();

  constructor(private readonly redis: Redis) {
    this.scripts = scriptRunner(redis);
  }

  async get(name: string): Promise<NodeRecord | undefined> {
    const [rec] = await this.getMany([name]);
    return rec;
  }

  async names(): Promise<string[]> {
    return this.redis.zrange(keys.nodes, 0, -1);
  }

  /**
   * Every node's record; a record's JSON is read and parsed again only after it changed
   * (getMany with `parsed`: list's own cache, or the caller's; nodes that left go from it).
   */
  async list(parsed: Map<string, ParsedNode> = this.listed): Promise<NodeRecord[]> {
    const names = await this.names();
    const out = await this.getMany(names, parsed);
    if (parsed.size > names.length) {
      const current = new Set(names);
      for (const name of parsed.keys()) if (!current.has(name)) parsed.delete(name);
    }
    return out;
  }

  /**
   * Records of several nodes in one pipelined round trip. With `parsed`, the record's JSON is
   * neither read nor parsed again while its revision is the one parsed before (every commit
   * moves the revision; a second round trip reads revision and JSON together for the records
   * that moved): the caller's copy is reused, shallow-copied with this read's allocations and
   * heartbeat. The caller must not change what it gets back in place.
   */
  async getMany(names: readonly string[], parsed?: Map<string, ParsedNode>): Promise<NodeRecord[]> {
    if (names.length === 0) return [];
    // Script calls of READ_CHUNK nodes each, in one pipeline: one round trip, and a short hold of Redis per call.
    const chunks = chunked(names, READ_CHUNK);
    const replies = await this.scripts.runMany(chunks.map((c) => ({ name: 'gantryNodeReads', keys: [...c.map((n) => keys.node(n)), ...c.map((n) => keys.nodeAlloc(n))], args: [parsed ? '0' : '1'] })));
    return (await this.parseReads(names, replies, parsed)).filter((r): r is NodeRecord => r !== undefined);
  }

  /**
   * Records heartbeats and reads their nodes' records in one round trip (node-heartbeat-reads.lua):
   * a node's time is set when its record exists and its registered agent instance is the
   * heartbeat's (or it has none: NodeRegistry's sameInstance decides the same from the record
   * returned). The record of each heartbeat, as getMany reads it with `parsed` (undefined for an
   * unknown node), its heartbeatMs `ms` when the time was recorded.
   */
  async recordHeartbeats(beats: readonly { name: string; instanceId: string }[], ms: number, parsed: Map<string, ParsedNode>): Promise<(NodeRecord | undefined)[]> {
    if (beats.length === 0) return [];
    const chunks = chunked(beats, READ_CHUNK);
    const replies = await this.scripts.runMany(chunks.map((c) => ({
      name: 'gantryNodeHeartbeatReads',
      keys: [keys.heartbeats, ...c.map((b) => keys.node(b.name)), ...c.map((b) => keys.nodeAlloc(b.name))],
      args: [ms, '0', ...c.map((b) => b.instanceId), ...c.map((b) => b.name)],
    })));
    return this.parseReads(beats.map((b) => b.name), replies, parsed);
  }

  /** The replies of node-reads.lua-shaped calls over `names` (in order), parsed: a record per name, undefined where there is none. */
  private async parseReads(names: readonly string[], replies: readonly ScriptResult[], parsed?: Map<string, ParsedNode>): Promise<(NodeRecord | undefined)[]> {
    const res: [(string | null)[], string[]][] = [];
    for (const r of replies) {
      if (!r.ok) throw r.error;
      res.push(...(r.value as [(string | null)[], string[]][]));
    }
    const rows = names.map((name, i) => {
      const [rev, hb, instance, prevInstance, instanceSince, json] = (res[i]?.[0] ?? []) as (string | null | undefined)[];
      return { name, rev, hb, instance, prevInstance, instanceSince, json, alloc: res[i]?.[1] ?? [] };
    });
    if (parsed) {
      const moved = rows.filter((r) => r.rev && !current(parsed.get(r.name), r.rev, r.instanceSince));
      if (moved.length > 0) {
        const q = this.redis.pipeline();
        for (const r of moved) q.hmget(keys.node(r.name), 'rev', 'node');
        ((await q.exec()) ?? []).forEach(([, v], k) => {
          const [rev, json] = (v ?? []) as (string | null)[];
          moved[k]!.rev = rev;
          moved[k]!.json = json;
        });
      }
    }
    const out: (NodeRecord | undefined)[] = [];
    for (const { name, rev, hb, instance, prevInstance, instanceSince, json, alloc } of rows) {
      out.push(undefined);
      if (!rev) continue;
      let known = parsed?.get(name);
      let node: Node;
      if (known && current(known, rev, instanceSince)) {
        node = { ...known.node };
      } else if (json) {
        node = Node.fromJSON(JSON.parse(json));
        known = { rev: Number(rev), node: { ...node }, since: instanceSince ?? '' };
        parsed?.set(name, known);
      } else {
        continue;
      }
      // Most reads find the allocations as they were (a heartbeat every 2 s, a pass every few):
      // the parsed list is reused then (callers must not change it in place).
      let allocations: GpuAllocation[];
      if (known && known.allocations && sameStrings(known.allocFlat, alloc)) {
        allocations = known.allocations;
      } else {
        allocations = [];
        for (let k = 0; k + 1 < alloc.length; k += 2) {
          const o = parseAllocationOwner(alloc[k + 1]!);
          if (o) allocations.push(GpuAllocation.create({ gpuIndex: Number(alloc[k]), jobId: o.jobId, attempt: o.attempt, rank: o.rank }));
        }
        allocations.sort((x, y) => x.gpuIndex - y.gpuIndex);
        if (known && parsed) {
          known.allocFlat = alloc;
          known.allocations = allocations;
        }
      }
      node.allocations = allocations;
      node.lastHeartbeat = hb ? new Date(Number(hb)) : undefined;
      out[out.length - 1] = { node, rev: Number(rev), heartbeatMs: Number(hb ?? 0), instanceId: instance ?? '', previousInstanceId: prevInstance ?? '', instanceSinceMs: Number(instanceSince || 0), allocations };
    }
    return out;
  }

  /** The id of the node change stream's newest entry ('0-0' when empty): where a reader that lists every node now starts. */
  changesHead(): Promise<string> {
    return changesHead(this.redis, keys.nodeChanges);
  }

  /**
   * The nodes whose record or allocations were written after `cursor`, and the new cursor;
   * `gap` when the capped stream no longer holds every entry after the cursor (the reader must
   * then list every node again). Heartbeats are not changes: they move only the time.
   */
  changesSince(cursor: string): Promise<Changes> {
    return changesSince(this.redis, keys.nodeChanges, cursor);
  }

  /** The registered agent instance, the one before it and when the current one started: one read, for every agent report. */
  async instances(name: string): Promise<NodeInstances | undefined> {
    const [current, previous, since] = await this.redis.hmget(keys.node(name), 'instance', 'prevInstance', 'instanceSince');
    return current ? { current, previous: previous ?? '', sinceMs: Number(since || 0) } : undefined;
  }

  /** Nodes whose last heartbeat is older than `beforeMs` (an index read, not a scan of every node). */
  async silentSince(beforeMs: number): Promise<string[]> {
    return this.redis.zrangebyscore(keys.heartbeats, '-inf', `(${beforeMs}`);
  }

  /**
   * Frees allocations still held by the given owners (leader only), and the rendezvous ports
   * those owners hold on the same nodes; returns how many GPUs were freed.
   */
  async releaseGpus(refs: GpuRef[], epoch: number): Promise<number> {
    if (refs.length === 0) return 0;
    const res = Number(await this.scripts.run(
      'gantryReleaseGpus',
      [keys.leaderEpoch, keys.nodeChanges, ...refs.flatMap((r) => [keys.nodeAlloc(r.node), keys.nodePorts(r.node)])],
      [String(epoch), ...refs.flatMap((r) => [String(r.gpu), r.owner]), ...new Set(refs.map((r) => r.node))],
    ));
    if (res < 0) throw new FencedError(String(epoch));
    return res;
  }

  /** Rendezvous ports claimed on the node, with their owners (allocationOwner of node rank 0). */
  async ports(name: string): Promise<Map<number, string>> {
    const raw = await this.redis.hgetall(keys.nodePorts(name));
    return new Map(Object.entries(raw).map(([port, owner]) => [Number(port), owner]));
  }

  /** ports() of several nodes in one pipelined round trip. */
  async portsOf(names: readonly string[]): Promise<Map<string, Map<number, string>>> {
    const out = new Map<string, Map<number, string>>();
    if (names.length === 0) return out;
    const p = this.redis.pipeline();
    for (const n of names) p.hgetall(keys.nodePorts(n));
    const res = (await p.exec()) ?? [];
    names.forEach((n, i) => {
      const [err, raw] = res[i] ?? [new Error('no reply')];
      if (err) throw err;
      out.set(n, new Map(Object.entries(raw as Record<string, string>).map(([port, owner]) => [Number(port), owner])));
    });
    return out;
  }

  async commit(c: NodeCommit): Promise<NodeRecord> {
    const from = c.prev?.node.state ?? NodeState.NODE_STATE_UNSPECIFIED;
    const to = c.next.state;
    if (c.prev && from !== to && !canTransitionNode(from, to)) {
      throw new InvalidTransitionError(`node ${c.next.name}: ${nodeStateName(from)} -> ${nodeStateName(to)} is not a valid transition`);
    }
    const now = c.now ?? new Date();
    const rev = c.prev?.rev ?? 0;
    // Allocations and heartbeat live in their own keys; the record holds the rest.
    const decided = from !== to || c.event === true;
    const next = Node.create({ ...c.next, revision: rev + 1, allocations: [], lastHeartbeat: undefined, reason: decided ? c.reason : c.next.reason });
    const event = decided ? nodeEvent(subjects.nodeEvent(next.name), next.name, from, to, c.reason, now) : undefined;
    const res = (await this.scripts.run('gantryCommitNode', [keys.node(next.name), keys.outbox, keys.leaderEpoch, keys.nodes, keys.nodeEvents(next.name), keys.heartbeats, keys.nodeChanges], [
      String(rev), c.prev ? nodeStateName(from) : '*', nodeStateName(to), JSON.stringify(Node.toJSON(next)),
      c.epoch === undefined ? '' : String(c.epoch), event?.subject ?? '', event?.id ?? '', event?.data ?? '', next.name,
      c.heartbeatMs === undefined ? '' : String(c.heartbeatMs), c.instanceId ?? '', event?.logEntry ?? '', NODE_EVENT_LOG_CAP,
      c.instanceSinceMs === undefined ? '' : String(c.instanceSinceMs),
    ])) as string[];
    if (res[0] === 'FENCED') throw new FencedError(String(c.epoch));
    if (res[0] === 'STALE') throw new StaleWriteError(keys.node(next.name), Number(res[1]), res[2] ?? '');
    return {
      node: next,
      rev: Number(res[1]),
      heartbeatMs: c.heartbeatMs ?? c.prev?.heartbeatMs ?? 0,
      instanceId: c.instanceId ?? c.prev?.instanceId ?? '',
      previousInstanceId: c.instanceId && c.instanceId !== c.prev?.instanceId ? c.prev?.instanceId ?? '' : c.prev?.previousInstanceId ?? '',
      instanceSinceMs: c.instanceId && c.instanceId !== c.prev?.instanceId ? c.instanceSinceMs ?? 0 : c.prev?.instanceSinceMs ?? 0,
      allocations: c.prev?.allocations ?? [],
    };
  }
}

// What the node health detector keeps between windows: its config, its state, a cursor per
// node into the telemetry history, an inbox of XIDs not yet evaluated, and the latest result
// per node and for the cluster (what `gantry node explain` and `gantry health` read).
//
// A window is committed in one MULTI: the new state, the cursors, the results, and the XIDs
// it consumed taken off the inbox. A leader that dies mid-window leaves the old state and the
// whole inbox, and the next one evaluates the same window again.
import type { Redis } from 'ioredis';
import { GetClusterHealthResponse, NodeHealth, XidEvent } from '@gantry/proto';
import { keys } from './keys.js';

/** Enough for a long scheduler outage; older XIDs are dropped first (they were acted on at ingest). */
export const HEALTH_XID_INBOX_CAP = 100_000;

export interface HealthOperatorAction {
  node: string;
  action: 'release' | 'remediated' | 'quarantine';
  reason?: string;
}

export interface HealthWindowState {
  stateJson: string | undefined;
  /** Node -> time (ms) of the newest batch already evaluated. */
  cursors: Map<string, number>;
}

export interface HealthWindowCommit {
  stateJson: string;
  cursors: Map<string, number>;
  /** How many XIDs from the head of the inbox this window evaluated. */
  xidsConsumed: number;
  /** How many operator decisions from the head of their inbox this window applied. */
  operatorConsumed: number;
  nodes: NodeHealth[];
  /** Nodes the detector no longer judges: their results are dropped. */
  removedNodes: string[];
  cluster: GetClusterHealthResponse;
}

export class HealthStore {
  constructor(private readonly redis: Redis) {}

  async configJson(): Promise<string | undefined> {
    return (await this.redis.get(keys.healthConfig)) ?? undefined;
  }

  async setConfigJson(json: string): Promise<void> {
    await this.redis.set(keys.healthConfig, json);
  }

  /** Queues an XID for the next evaluation (the ingest acts on it at once as well). */
  async queueXid(xid: XidEvent): Promise<void> {
    await this.redis.multi()
      .rpush(keys.healthXids, Buffer.from(XidEvent.encode(xid).finish()))
      .ltrim(keys.healthXids, -HEALTH_XID_INBOX_CAP, -1)
      .exec();
  }

  /** Tells the detector about an operator's quarantine or release (it applies them first next window). */
  async queueOperator(action: HealthOperatorAction): Promise<void> {
    await this.redis.rpush(keys.healthOperator, JSON.stringify(action));
  }

  async pendingOperator(limit = 10_000): Promise<HealthOperatorAction[]> {
    const raw = await this.redis.lrange(keys.healthOperator, 0, limit - 1);
    return raw.map((r) => JSON.parse(r) as HealthOperatorAction);
  }

  async load(): Promise<HealthWindowState> {
    const [state, cursors] = await Promise.all([this.redis.get(keys.healthState), this.redis.hgetall(keys.healthCursor)]);
    return { stateJson: state ?? undefined, cursors: new Map(Object.entries(cursors).map(([k, v]) => [k, Number(v)])) };
  }

  /** The XIDs waiting for evaluation, oldest first (at most `limit`). */
  async pendingXids(limit = 10_000): Promise<XidEvent[]> {
    const raw = await this.redis.lrangeBuffer(keys.healthXids, 0, limit - 1);
    return raw.map((b) => XidEvent.decode(b));
  }

  async commit(c: HealthWindowCommit): Promise<void> {
    const m = this.redis.multi().set(keys.healthState, c.stateJson);
    if (c.cursors.size > 0) m.hset(keys.healthCursor, Object.fromEntries([...c.cursors].map(([k, v]) => [k, String(v)])));
    if (c.xidsConsumed > 0) m.ltrim(keys.healthXids, c.xidsConsumed, -1);
    if (c.operatorConsumed > 0) m.ltrim(keys.healthOperator, c.operatorConsumed, -1);
    if (c.nodes.length > 0) m.hset(keys.healthNodes, Object.fromEntries(c.nodes.map((n) => [n.node, JSON.stringify(NodeHealth.toJSON(n))])));
    if (c.removedNodes.length > 0) m.hdel(keys.healthNodes, ...c.removedNodes).hdel(keys.healthCursor, ...c.removedNodes);
    m.set(keys.healthCluster, JSON.stringify(GetClusterHealthResponse.toJSON(c.cluster)));
    const res = await m.exec();
    const failed = res?.find(([err]) => err);
    if (!res || failed) throw new Error(`health window not stored: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  }

  async nodeHealth(name: string): Promise<NodeHealth | undefined> {
    const raw = await this.redis.hget(keys.healthNodes, name);
    return raw ? NodeHealth.fromJSON(JSON.parse(raw)) : undefined;
  }

  async cluster(): Promise<GetClusterHealthResponse | undefined> {
    const raw = await this.redis.get(keys.healthCluster);
    return raw ? GetClusterHealthResponse.fromJSON(JSON.parse(raw)) : undefined;
  }
}

// Node membership on /metrics, read from Redis (the source of truth) when Prometheus scrapes,
// never on a heartbeat or a scheduling cycle: nodes per state, and each node's heartbeat age.
// A scrape costs two round trips whatever the cluster's size (the node index with every node's
// state in one pipeline, and the heartbeat index), about one small read per node.
//
// Only the leader reports them: every replica would read the same values, and one source keeps
// the per-node series from being multiplied by the number of replicas.
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { NodeState, nodeStateName } from '@gantry/proto';
import { keys } from '@gantry/store';

/** Every state a node record can hold, so that a state with no node reads 0 rather than absent. */
const STATES = Object.values(NodeState).filter((s): s is NodeState => typeof s === 'number' && s !== NodeState.NODE_STATE_UNSPECIFIED && s !== NodeState.UNRECOGNIZED).map(nodeStateName);

export interface NodeMembership {
  /** state name -> nodes in it */
  states: Map<string, number>;
  /** node -> seconds since its last heartbeat reached the scheduler */
  heartbeatAgeSec: Map<string, number>;
}

/** Reads the node index (with each node's state) and the heartbeat index. */
export async function readNodeMembership(redis: Redis, nowMs: number): Promise<NodeMembership> {
  const [names, beats] = await Promise.all([redis.zrange(keys.nodes, 0, -1), redis.zrange(keys.heartbeats, 0, -1, 'WITHSCORES')]);
  const states = new Map(STATES.map((s) => [s, 0]));
  if (names.length > 0) {
    const p = redis.pipeline();
    for (const n of names) p.hget(keys.node(n), 'state');
    for (const [err, state] of (await p.exec()) ?? []) {
      if (err || typeof state !== 'string') continue; // a node deleted between the two reads
      states.set(state, (states.get(state) ?? 0) + 1);
    }
  }
  const heartbeatAgeSec = new Map<string, number>();
  for (let i = 0; i + 1 < beats.length; i += 2) heartbeatAgeSec.set(beats[i]!, Math.max(0, (nowMs - Number(beats[i + 1])) / 1000));
  return { states, heartbeatAgeSec };
}

/** Registers gantry_nodes{state} and gantry_node_heartbeat_age_seconds{node}; `leads` says whether this replica leads now. */
export function registerNodeGauges(redis: Redis, metrics: Registry, leads: () => boolean): void {
  let pending: Promise<NodeMembership | undefined> | undefined;
  // Both gauges are collected in one scrape: one read of Redis serves them both.
  const read = (): Promise<NodeMembership | undefined> => {
    pending ??= (leads() ? readNodeMembership(redis, Date.now()).catch(() => undefined) : Promise.resolve(undefined)).finally(() => setImmediate(() => { pending = undefined; }));
    return pending;
  };
  const gauge = (name: string, help: string, label: string, values: (m: NodeMembership) => Map<string, number>) => new Gauge({
    name, help, labelNames: [label], registers: [metrics],
    async collect() {
      const m = await read();
      this.reset();
      for (const [key, value] of m ? values(m) : []) this.set({ [label]: key }, value);
    },
  });
  gauge('gantry_nodes', 'Nodes per state (READY, SUSPECT, QUARANTINED, DRAINING, DRAINED, LOST, REGISTERING), from the node records; reported by the leader only', 'state', (m) => m.states);
  gauge('gantry_node_heartbeat_age_seconds', 'Seconds since each node\'s last heartbeat reached the scheduler (one series per node); reported by the leader only', 'node', (m) => m.heartbeatAgeSec);
}

// `gantry admin status`: the control plane as the scheduler sees it: the leader lease and its
// epoch, every announced Gantry process with its version, the NATS server it is connected to
// and each stream's replicas, and Redis replication from the primary's point of view.
import {
  GetClusterStatusResponse, LeaderStatus, NatsServerStatus, RedisReplica, RedisStatus, ServiceInstance, StreamReplica, StreamStatus,
} from '@gantry/proto';
import { streamFill } from '@gantry/bus';
import { ANNOUNCE_MS, InstanceRegistry, keys } from '@gantry/store';
import type { SchedulerContext } from '../context.js';

/** `slave0:ip=10.0.0.2,port=6379,state=online,offset=123,lag=0` and the like, from INFO replication. */
export function parseReplication(info: string): RedisStatus {
  const fields = new Map(info.split(/\r?\n/).map((l) => l.split(':', 2) as [string, string]).filter(([k, v]) => k && v !== undefined));
  const masterOffset = Number(fields.get('master_repl_offset') ?? 0);
  const replicas: RedisReplica[] = [];
  for (const [k, v] of fields) {
    if (!/^slave\d+$/.test(k)) continue;
    const kv = new Map(v.split(',').map((p) => p.split('=', 2) as [string, string]));
    replicas.push(RedisReplica.create({
      address: `${kv.get('ip') ?? '?'}:${kv.get('port') ?? '?'}`,
      state: kv.get('state') ?? '',
      offsetLagBytes: Math.max(0, masterOffset - Number(kv.get('offset') ?? 0)),
      lagSeconds: Number(kv.get('lag') ?? 0),
    }));
  }
  const role = fields.get('role') === 'slave' ? 'replica' : (fields.get('role') ?? 'unknown');
  return RedisStatus.create({ role, replicas });
}

export async function clusterStatus(ctx: SchedulerContext, sentinelMaster: string | undefined, now = Date.now()): Promise<GetClusterStatusResponse> {
  const [holder, epoch, pttl, info, instances, streams] = await Promise.all([
    ctx.redis.get(keys.leader), ctx.redis.get(keys.leaderEpoch), ctx.redis.pttl(keys.leader), ctx.redis.info('replication'),
    new InstanceRegistry(ctx.redis).list(now), streamFill(ctx.nc),
  ]);
  const server = ctx.nc.info;
  return GetClusterStatusResponse.create({
    leader: LeaderStatus.create({ instanceId: holder ?? '', epoch: Number(epoch ?? 0), leaseRemainingMs: Math.max(0, pttl) }),
    services: instances.map((i) => ServiceInstance.create({
      service: i.service, instanceId: i.instanceId, version: i.version, startedAt: new Date(i.startedMs), lastSeen: new Date(i.seenMs),
      stale: now - i.seenMs > 3 * ANNOUNCE_MS,
    })),
    nats: server ? NatsServerStatus.create({ serverName: server.server_name, version: server.version, cluster: server.cluster ?? '', connectUrls: server.connect_urls ?? [] }) : undefined,
    streams: streams.map((s) => StreamStatus.create({
      name: s.stream, replicas: s.replicas, messages: s.messages, bytes: s.bytes,
      peers: [
        ...(s.leader ? [StreamReplica.create({ name: s.leader, leader: true, current: true, lag: 0 })] : []),
        ...s.peers.map((p) => StreamReplica.create({ name: p.name, leader: false, current: p.current, lag: p.lagMessages })),
      ],
    })),
    redis: { ...parseReplication(info), sentinelMaster: sentinelMaster ?? '' },
  });
}

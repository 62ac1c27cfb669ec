// The HA data plane on one machine, as the local stack (`--ha`) and the test harness run it:
// three nats-server processes as a JetStream cluster (routes on loopback ports, a store folder
// each) and Redis as a primary, a replica and three sentinels. Only configuration text and
// command lines here; starting and stopping is the caller's. docs/deploy.md shows the same
// settings for real hosts.
import { join } from 'node:path';

export const SENTINEL_MASTER = 'gantry';

export interface NatsMember {
  name: string;
  /** Client port. */
  port: number;
  /** Route (cluster) port. */
  clusterPort: number;
  /** Monitoring port (/healthz, /jsz, /connz). */
  httpPort: number;
}

/**
 * nats-server configuration of one member of a three-node cluster. JetStream's file store is
 * written to the OS at once and fsynced every 2 minutes (nats-server 2.9 has no setting for it;
 * 2.10+ has `sync_interval`): with streams replicated to 3, a publish is acknowledged once two
 * servers hold it, so the crash of one host loses nothing acknowledged (docs/deploy.md).
 */
export function natsMemberConfig(member: NatsMember, all: NatsMember[], storeDir: string, maxFileStore = '64G'): string {
  const routes = all.filter((m) => m.name !== member.name).map((m) => `nats-route://127.0.0.1:${m.clusterPort}`);
  return [
    `server_name: ${member.name}`,
    `listen: 127.0.0.1:${member.port}`,
    `http: 127.0.0.1:${member.httpPort}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDir)}`,
    `  max_file_store: ${maxFileStore}`,
    '  max_memory_store: 256M',
    '}',
    'cluster {',
    '  name: gantry',
    `  listen: 127.0.0.1:${member.clusterPort}`,
    `  routes: [${routes.join(', ')}]`,
    // Clients use the servers their NATS_URL lists, not addresses gossiped by the cluster.
    '  no_advertise: true',
    '}',
    '',
  ].join('\n');
}

/** The client URL list of a cluster, as NATS_URL takes it. */
export function natsClusterUrl(members: NatsMember[]): string {
  return members.map((m) => `nats://127.0.0.1:${m.port}`).join(',');
}

/**
 * redis-server arguments: append-only file with fsync every second (at most a second of
 * acknowledged writes on one host's power loss; the replica and WAIT cover the rest), no RDB
 * snapshots, and as a replica of `primaryPort` when given.
 */
export function redisServerArgs(port: number, dir: string, primaryPort?: number): string[] {
  return [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
    '--maxmemory-policy', 'noeviction',
    ...(primaryPort ? ['--replicaof', '127.0.0.1', String(primaryPort)] : []),
  ];
}

export interface SentinelTiming {
  /** Silence after which a sentinel considers the primary down. */
  downAfterMs: number;
  failoverTimeoutMs: number;
}

/** sentinel.conf of one of three sentinels (quorum 2); sentinels rewrite it, so each has its own file. */
export function sentinelConfig(port: number, dir: string, primaryPort: number, timing: SentinelTiming = { downAfterMs: 1_000, failoverTimeoutMs: 5_000 }): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${JSON.stringify(dir)}`,
    `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primaryPort} 2`,
    `sentinel down-after-milliseconds ${SENTINEL_MASTER} ${timing.downAfterMs}`,
    `sentinel failover-timeout ${SENTINEL_MASTER} ${timing.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
    '',
  ].join('\n');
}

export function sentinelConfigPath(dir: string): string {
  return join(dir, 'sentinel.conf');
}

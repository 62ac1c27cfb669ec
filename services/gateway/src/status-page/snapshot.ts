// What the status page shows, gathered per request through the gateway's own handlers (the
// calls a gRPC client would make with the same credentials) and the checkpoint service's
// StorageService, trimmed to the fields the page renders. Each section carries its items or the
// precise reason it cannot be shown to this caller (a user without the reader role sees no
// nodes; a user of several tenants names one to see its jobs), so one refusal does not blank the page.
import {
  failureClassName, jobStateName, nodeStateName, recoveryGradeName,
  type AuthServiceServer, type Job, type JobServiceServer, type Node, type NodeServiceServer, type StorageServiceClient, type StorageTarget, type WhoAmIResponse,
} from '@gantry/proto';
import { hasRole, inTenant, isRole, type Principal } from '@gantry/auth';
import { call } from '../scheduler-client.js';
import { invoke, type Caller } from './invoke.js';
import type { EventFeed, FeedEvent } from './event-feed.js';

export const JOBS_SHOWN = 100;
export const NODES_SHOWN = 5000;

export type Section<T> = { items: T[] } | { error: string };

export interface JobView {
  id: string; name: string; tenant: string; state: string; attempt: number; recoveries: number; maxRecoveries: number; reason: string; updatedAt: string;
  /** Older attempts dropped from the job's record (attempts holds the newest; the first is attemptsCompacted + 1). */
  attemptsCompacted: number;
  /** The recovery chain: every attempt the record keeps, its grade and what ended it. */
  attempts: { number: number; nodes: string[]; grade: string; startedAt: string; finishedAt: string; failure: string; failureClass: string; failedNode: string }[];
}

export interface NodeView {
  name: string; state: string; cordoned: boolean; healthScore: number; reason: string; lastHeartbeat: string; gpus: number; gpusAllocated: number;
  conditions: { type: string; reason: string; message: string }[];
}

export interface StorageView {
  name: string; mountPrefix: string; serverExport: string; degraded: boolean; writeBytesPerSecond: number; readBytesPerSecond: number;
  writePool: string; readPool: string; leases: number; waiters: number;
}

export interface Snapshot {
  generatedAt: string;
  subject: string;
  authEnabled: boolean;
  jobs: Section<JobView>;
  nodes: Section<NodeView>;
  events: Section<FeedEvent>;
  storage: Section<StorageView>;
}

export interface SnapshotSources {
  jobs: JobServiceServer;
  nodes: NodeServiceServer;
  auth: AuthServiceServer;
  /** The checkpoint service's StorageService; undefined when the gateway was given none. */
  storage: StorageServiceClient | undefined;
  feed: EventFeed;
}

const iso = (d: Date | undefined) => d?.toISOString() ?? '';

export function jobView(j: Job): JobView {
  return {
    id: j.id, name: j.spec?.name ?? '', tenant: j.spec?.tenant ?? '', state: jobStateName(j.state), attempt: j.attempt, recoveries: j.recoveries, maxRecoveries: j.maxRecoveries, reason: j.reason, updatedAt: iso(j.updatedAt),
    attemptsCompacted: j.attemptsCompacted,
    attempts: j.attempts.map((a) => ({
      number: a.number, nodes: [...new Set(a.placement.map((p) => p.node))], grade: recoveryGradeName(a.grade), startedAt: iso(a.startedAt), finishedAt: iso(a.finishedAt),
      failure: a.failure ? (a.failure.evidence && !a.failure.reason.includes(a.failure.evidence) ? `${a.failure.reason}: ${a.failure.evidence}` : a.failure.reason) : '', failureClass: a.failure ? failureClassName(a.failure.failureClass) : '', failedNode: a.failure?.node ?? '',
    })),
  };
}

export function nodeView(n: Node): NodeView {
  return {
    name: n.name, state: nodeStateName(n.state), cordoned: n.cordoned, healthScore: n.healthScore, reason: n.reason, lastHeartbeat: iso(n.lastHeartbeat), gpus: n.gpus.length, gpusAllocated: n.allocations.length,
    conditions: n.conditions.filter((c) => c.status).map((c) => ({ type: c.type, reason: c.reason, message: c.message })),
  };
}

function poolLine(p: StorageTarget['writePool']): string {
  return p ? `${p.leases}/${p.limit} leased, ${p.waiters} waiting` : '-';
}

export function storageView(t: StorageTarget): StorageView {
  return {
    name: t.name, mountPrefix: t.mountPrefix, serverExport: t.serverExport, degraded: t.degraded, writeBytesPerSecond: t.writeBytesPerSecond, readBytesPerSecond: t.readBytesPerSecond,
    writePool: poolLine(t.writePool), readPool: poolLine(t.readPool), leases: t.leases.length, waiters: t.waiters.length,
  };
}

function principalOf(me: WhoAmIResponse): Principal {
  return { subject: me.subject, roles: me.roles.filter(isRole), tenants: me.tenants, method: me.authMethod === 'token' || me.authMethod === 'mtls' ? me.authMethod : 'none' };
}

async function section<T>(load: () => Promise<T[]>): Promise<Section<T>> {
  try {
    return { items: await load() };
  } catch (err) {
    const e = err as { details?: unknown; message?: unknown };
    return { error: String(typeof e.details === 'string' && e.details ? e.details : e.message ?? 'failed') };
  }
}

/**
 * The page's data for `caller`. Throws CallError when the caller is not authenticated (or is
 * rate limited): the whole request is refused then, with that status.
 */
export async function snapshot(src: SnapshotSources, caller: Caller, tenant: string): Promise<Snapshot> {
  const me = await invoke(src.auth.whoAmI, {}, caller);
  const p = principalOf(me);
  const [jobs, nodes, storage] = await Promise.all([
    section(async () => (await invoke(src.jobs.listJobs, { states: [], tenant, pageSize: JOBS_SHOWN, pageToken: '' }, caller)).jobs.map(jobView)),
    section(async () => (await invoke(src.nodes.listNodes, { states: [], pageSize: NODES_SHOWN, pageToken: '' }, caller)).nodes.map(nodeView)),
    section(async () => {
      // Storage targets are cluster-wide like nodes: the same reader role as ListNodes.
      if (!hasRole(p, 'user')) throw new Error(`storage targets need the user role (or above); ${p.subject} has ${p.roles.length ? p.roles.join(', ') : 'no role'}`);
      if (!src.storage) throw new Error('this gateway has no CHECKPOINT_ADDR: storage targets are not shown');
      return (await call(src.storage, src.storage.listStorageTargets, {}, 5_000)).targets.map(storageView);
    }),
  ]);
  // Node events for principals who may list nodes; job events for the caller's tenants only.
  const events = await section(async () => src.feed.recent((e) => (e.kind === 'node' ? hasRole(p, 'user') : inTenant(p, e.tenant) && (!tenant || e.tenant === tenant))));
  return { generatedAt: new Date().toISOString(), subject: me.subject, authEnabled: me.authEnabled, jobs, nodes, events, storage };
}

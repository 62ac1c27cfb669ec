// GantryClient: the typed client of the gateway (gantry.v1.JobService, NodeService and
// AdminService over one channel). Each RPC is a one-line method over `Rpc`; to add one, add the
// service client in the constructor (sharing the channel) and a method that names its retry class.
import { randomUUID } from 'node:crypto';
import {
  AdminServiceClient,
  AuthServiceClient,
  type AuditEvent,
  type WhoAmIResponse,
  JobServiceClient,
  JobSpec,
  ListJobsRequest,
  ListNodesRequest,
  NodeOperation,
  NodeServiceClient,
  type ExplainJobResponse,
  type ExplainNodeResponse,
  type GetClusterHealthResponse,
  type GetClusterStatusResponse,
  type OperationsReport,
  type GetNodeTelemetryResponse,
  type Job,
  type JobEvent,
  type JobState,
  type ListJobsResponse,
  type ListNodeEventsResponse,
  type ListNodesResponse,
  type Node,
  type NodeState,
  type StreamLogsResponse,
  type SubmitJobResponse,
} from '@gantry/proto';
import { GantryError, status } from './errors.js';
import { addDefaults, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Rpc, type CallOptions } from './rpc.js';

/** A JobSpec with every field optional; unset fields take their proto defaults. */
export type JobSpecInput = Partial<JobSpec>;

export interface SubmitOptions extends CallOptions {
  /**
   * The same key (per tenant) submitted twice creates one job. When absent a random key is
   * generated, so that retrying a submit whose response was lost can never create a second
   * job; pass your own to make a submit safe to repeat across processes too.
   */
  idempotencyKey?: string;
}

export interface SubmitJobsOptions extends CallOptions {
  /**
   * One key per spec, in order (submitJob's idempotencyKey for each); a random key for each
   * spec when absent, so a retried call creates nothing twice.
   */
  idempotencyKeys?: readonly string[];
}

/** One spec's outcome in submitJobs: the job (created false when its key named an existing job), or why it was refused. */
export type SubmitJobsItem = { ok: true; job: Job; created: boolean } | { ok: false; error: GantryError };

export interface LogOptions extends CallOptions {
  /** Keep the stream open until the job ends. */
  follow?: boolean;
  /** Only this rank. */
  rank?: number;
  /** Only this attempt; 0 or absent = every attempt. */
  attempt?: number;
}

export interface JobFilter {
  states?: JobState[];
  tenant?: string;
  /** Page size; the server's default (100) when absent. */
  pageSize?: number;
}

export interface NodeFilter {
  states?: NodeState[];
  pageSize?: number;
}

export interface NodeTelemetryOptions extends CallOptions {
  /** How many earlier batches to return besides the latest, newest first (0..64, the batches kept per node; default 0). */
  history?: number;
}

export interface NodeOperationOptions extends CallOptions {
  /** Why: recorded with the node event and shown in `gantry node events`. */
  reason?: string;
  /** drain only: move the jobs still running after this many seconds (0 = let them finish). */
  drainTimeoutSeconds?: number;
}

export interface AuditFilter {
  /** At most this many events (1..1000; absent = 100). */
  limit?: number;
  /** Only this principal's calls. */
  subject?: string;
  /** Only methods ending with this, e.g. CancelJob. */
  method?: string;
  /** Only events older than this id (the previous page's nextBeforeId). */
  beforeId?: string;
}

export interface NodeEventsOptions extends CallOptions {
  /** At most this many events, newest first (1..1000; 0 or absent = the server's default, 100). */
  limit?: number;
}

/** A config document as the server stores it: the scheduling policy (docs/scheduling.md) or the health config (docs/health.md). */
export interface SchedulingConfig {
  /** The parsed document: tenants, defaultTenant, fairShare, preemption, backfill. */
  config: Record<string, unknown>;
  /** The server's text of it, unchanged. */
  configJson: string;
}

/** Unwraps the single message of a response, which a correct server always sets. */
function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new GantryError(status.INTERNAL, `server response has no ${what}`);
  return value;
}

function parseConfig(configJson: string, what = 'scheduling'): SchedulingConfig {
  let config: unknown;
  try {
    config = JSON.parse(configJson);
  } catch (err) {
    throw new GantryError(status.INTERNAL, `server sent a ${what} config that is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new GantryError(status.INTERNAL, `server sent a ${what} config that is not a JSON object`);
  }
  return { config: config as Record<string, unknown>, configJson };
}

export class GantryClient {
  readonly options: ResolvedClientOptions;
  private readonly rpc: Rpc;
  private readonly jobs: JobServiceClient;
  private readonly nodes: NodeServiceClient;
  private readonly admin: AdminServiceClient;
  private readonly auth: AuthServiceClient;

  constructor(options: ClientOptions = {}) {
    this.options = addDefaults(options);
    this.rpc = new Rpc(this.options);
    const { address, credentials, channelOptions } = this.options;
    this.jobs = new JobServiceClient(address, credentials, channelOptions);
    // One channel (one connection) for every service of the gateway.
    this.nodes = new NodeServiceClient(address, credentials, { channelOverride: this.jobs.getChannel() });
    this.admin = new AdminServiceClient(address, credentials, { channelOverride: this.jobs.getChannel() });
    this.auth = new AuthServiceClient(address, credentials, { channelOverride: this.jobs.getChannel() });
  }

  /** Closes the channel; calls in flight fail with CANCELLED/UNAVAILABLE. */
  close(): void {
    this.jobs.close();
  }

  // --- jobs ---

  /**
   * Submits a job; `created` is false when the caller's idempotency key matched a job an
   * earlier call created. The same key with a different spec fails with ALREADY_EXISTS,
   * naming that job. Retried on UNAVAILABLE and DEADLINE_EXCEEDED (the key makes it safe).
   */
  async submitJob(spec: JobSpecInput, options: SubmitOptions = {}): Promise<SubmitJobResponse> {
    const { idempotencyKey, ...call } = options;
    // The key is fixed before the first attempt, so every retry carries the same one.
    const request = { spec: JobSpec.fromPartial(spec), idempotencyKey: idempotencyKey ?? randomUUID() };
    const res = await this.rpc.unary(this.jobs.submitJob.bind(this.jobs), request, 'keyed', call);
    // A key of our own making that already names a job: an earlier attempt of this very call
    // created it (its answer was lost), so this call did create the job.
    return idempotencyKey === undefined ? { ...res, created: true } : res;
  }

  /**
   * Submits up to 1,000 jobs in one call (the server's limit; more, or none, is
   * INVALID_ARGUMENT). Each spec is admitted and authorized as by submitJob and answered on its
   * own, in order: a refused spec does not fail the others. Retried as a whole on UNAVAILABLE
   * and DEADLINE_EXCEEDED, which the keys make safe.
   */
  async submitJobs(specs: readonly JobSpecInput[], options: SubmitJobsOptions = {}): Promise<SubmitJobsItem[]> {
    const { idempotencyKeys, ...call } = options;
    if (idempotencyKeys && idempotencyKeys.length !== specs.length) {
      throw new GantryError(status.INVALID_ARGUMENT, `idempotencyKeys has ${idempotencyKeys.length} keys for ${specs.length} specs`);
    }
    const jobs = specs.map((spec, i) => ({ spec: JobSpec.fromPartial(spec), idempotencyKey: idempotencyKeys?.[i] ?? randomUUID() }));
    const res = await this.rpc.unary(this.jobs.submitJobs.bind(this.jobs), { jobs }, 'keyed', call);
    if (res.results.length !== specs.length) throw new GantryError(status.INTERNAL, `server answered ${res.results.length} results for ${specs.length} submissions`);
    return res.results.map((r): SubmitJobsItem => {
      const out = r.result;
      if (out?.$case === 'error') return { ok: false, error: new GantryError(out.error.code, out.error.message) };
      if (out?.$case !== 'submitted' || !out.submitted.job) return { ok: false, error: new GantryError(status.INTERNAL, `server sent no job for submission ${r.index}`) };
      // As in submitJob: a key of our own making that names a job was used by an earlier attempt of this call.
      return { ok: true, job: out.submitted.job, created: idempotencyKeys === undefined || out.submitted.created };
    });
  }

  async getJob(jobId: string, options?: CallOptions): Promise<Job> {
    const res = await this.rpc.unary(this.jobs.getJob.bind(this.jobs), { jobId }, 'read', options);
    return present(res.job, 'job');
  }

  /** One page of jobs; see `listAllJobs` for every page. */
  listJobs(request: Partial<ListJobsRequest> = {}, options?: CallOptions): Promise<ListJobsResponse> {
    return this.rpc.unary(this.jobs.listJobs.bind(this.jobs), ListJobsRequest.fromPartial(request), 'read', options);
  }

  /** Every job matching `filter`, fetching pages as the iteration goes. */
  async *listAllJobs(filter: JobFilter = {}, options?: CallOptions): AsyncGenerator<Job, void, undefined> {
    let pageToken = '';
    do {
      const page = await this.listJobs({ ...filter, pageToken }, options);
      yield* page.jobs;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Cancelling is idempotent: cancelling a finished job returns it unchanged (or an error the server decides). */
  async cancelJob(jobId: string, reason = '', options?: CallOptions): Promise<Job> {
    const res = await this.rpc.unary(this.jobs.cancelJob.bind(this.jobs), { jobId, reason }, 'idempotent', options);
    return present(res.job, 'job');
  }

  /**
   * Starts a FAILED job again as a new attempt of the same job, resuming from its newest
   * committed checkpoint. Not retried: a lost reply followed by a second call would be
   * refused (the job is no longer FAILED), so look at the job first.
   */
  async retryJob(jobId: string, reason = '', options?: CallOptions): Promise<Job> {
    const res = await this.rpc.unary(this.jobs.retryJob.bind(this.jobs), { jobId, reason }, 'unsafe', options);
    return present(res.job, 'job');
  }

  /** The job's current state first, then every transition until the job ends. */
  async *watchJob(jobId: string, options?: CallOptions): AsyncGenerator<JobEvent, void, undefined> {
    for await (const res of this.rpc.serverStream(this.jobs.watchJob.bind(this.jobs), { jobId }, options)) {
      if (res.event) yield res.event;
    }
  }

  streamLogs(jobId: string, options: LogOptions = {}): AsyncGenerator<StreamLogsResponse, void, undefined> {
    const { follow = false, rank, attempt = 0, ...call } = options;
    return this.rpc.serverStream(this.jobs.streamLogs.bind(this.jobs), { jobId, follow, rank, attempt }, call);
  }

  /**
   * Why a job is where it is. Pending: its queue position, the reason and message, the
   * tenant's quota, how many nodes each filter rejected, the backfill reservation it holds and
   * when the scheduler last evaluated it. Placed or ended: `placementExplanation` (why those
   * nodes) and, for ended jobs, the reason in `message`. NOT_FOUND for an unknown job.
   */
  explainJob(jobId: string, options?: CallOptions): Promise<ExplainJobResponse> {
    return this.rpc.unary(this.jobs.explainJob.bind(this.jobs), { jobId }, 'read', options);
  }

  // --- nodes ---

  listNodes(request: Partial<ListNodesRequest> = {}, options?: CallOptions): Promise<ListNodesResponse> {
    return this.rpc.unary(this.nodes.listNodes.bind(this.nodes), ListNodesRequest.fromPartial(request), 'read', options);
  }

  async *listAllNodes(filter: NodeFilter = {}, options?: CallOptions): AsyncGenerator<Node, void, undefined> {
    let pageToken = '';
    do {
      const page = await this.listNodes({ ...filter, pageToken }, options);
      yield* page.nodes;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  async getNode(name: string, options?: CallOptions): Promise<Node> {
    const res = await this.rpc.unary(this.nodes.getNode.bind(this.nodes), { name }, 'read', options);
    return present(res.node, 'node');
  }

  /**
   * The node's latest telemetry batch and `history` earlier ones (newest first). NOT_FOUND when
   * the node is unknown or has not reported telemetry yet (the message tells which).
   */
  getNodeTelemetry(name: string, options: NodeTelemetryOptions = {}): Promise<GetNodeTelemetryResponse> {
    const { history = 0, ...call } = options;
    return this.rpc.unary(this.nodes.getNodeTelemetry.bind(this.nodes), { name, history }, 'read', call);
  }

  /** The node's XID events and state transitions, newest first. NOT_FOUND when the node is unknown. */
  listNodeEvents(name: string, options: NodeEventsOptions = {}): Promise<ListNodeEventsResponse> {
    const { limit = 0, ...call } = options;
    return this.rpc.unary(this.nodes.listNodeEvents.bind(this.nodes), { name, limit }, 'read', call);
  }

  /**
   * Why the node is in its state: its health score, each contributing signal with its value and
   * baselines (absent until the detector has evaluated the node), and the decision history.
   */
  explainNode(name: string, options: CallOptions & { history?: number } = {}): Promise<ExplainNodeResponse> {
    const { history = 0, ...call } = options;
    return this.rpc.unary(this.nodes.explainNode.bind(this.nodes), { name, history }, 'read', call);
  }

  /** Shared storage and fabric faults, hangs and stragglers, and every node that is not plainly healthy. */
  getClusterHealth(options?: CallOptions): Promise<GetClusterHealthResponse> {
    return this.rpc.unary(this.nodes.getClusterHealth.bind(this.nodes), {}, 'read', options);
  }

  // --- admin (operators) ---

  /**
   * Cordons, uncordons, drains, quarantines or releases a node and resolves to the node after
   * it. FAILED_PRECONDITION when the operation makes no sense in the node's state (releasing a
   * node that is not quarantined). All but release are idempotent and retried on UNAVAILABLE.
   */
  async operateNode(name: string, operation: NodeOperation, options: NodeOperationOptions = {}): Promise<Node> {
    const { reason = '', drainTimeoutSeconds = 0, ...call } = options;
    const retry = operation === NodeOperation.NODE_OPERATION_RELEASE ? 'unsafe' : 'idempotent';
    const res = await this.rpc.unary(this.admin.operateNode.bind(this.admin), { name, operation, reason, drainTimeoutSeconds }, retry, call);
    return present(res.node, 'node');
  }

  /** The control plane: leader and epoch, every Gantry process and its version, NATS and stream replicas, Redis replication. */
  getClusterStatus(options?: CallOptions): Promise<GetClusterStatusResponse> {
    return this.rpc.unary(this.admin.getClusterStatus.bind(this.admin), {}, 'read', options);
  }

  /** The operations report of the last `sinceSeconds` (60 .. 90 days; operators): failures, exclusions, detection, retry chains, checkpoints, NFS queueing. */
  async getOperationsReport(sinceSeconds: number, options?: CallOptions): Promise<OperationsReport> {
    const res = await this.rpc.unary(this.admin.getOperationsReport.bind(this.admin), { sinceSeconds }, 'read', options);
    return present(res.report, 'report');
  }

  /** The node health detector's config in force (thresholds, signal weights, XID policy; docs/health.md). */
  async getHealthConfig(options?: CallOptions): Promise<SchedulingConfig> {
    const res = await this.rpc.unary(this.admin.getHealthConfig.bind(this.admin), {}, 'read', options);
    return parseConfig(res.configJson, 'health');
  }

  /** Replaces the health config (YAML/JSON text or an object) and resolves to the stored one, defaults filled in. */
  async setHealthConfig(config: string | object, options?: CallOptions): Promise<SchedulingConfig> {
    const configJson = typeof config === 'string' ? config : JSON.stringify(config);
    const res = await this.rpc.unary(this.admin.setHealthConfig.bind(this.admin), { configJson }, 'idempotent', options);
    return parseConfig(res.configJson, 'health');
  }

  /** The scheduling policy in force (the defaults when none was set). */
  async getSchedulingConfig(options?: CallOptions): Promise<SchedulingConfig> {
    const res = await this.rpc.unary(this.admin.getSchedulingConfig.bind(this.admin), {}, 'read', options);
    return parseConfig(res.configJson);
  }

  /**
   * Replaces the scheduling policy and resolves to the stored one, defaults filled in. A
   * string is sent as is (YAML or JSON text; the server parses it); anything else is sent as
   * its JSON. INVALID_ARGUMENT lists every problem (one per line, each with its path). A
   * replace is idempotent, so it is retried on UNAVAILABLE.
   */
  async setSchedulingConfig(config: string | object, options?: CallOptions): Promise<SchedulingConfig> {
    const configJson = typeof config === 'string' ? config : JSON.stringify(config);
    const res = await this.rpc.unary(this.admin.setSchedulingConfig.bind(this.admin), { configJson }, 'idempotent', options);
    return parseConfig(res.configJson);
  }

  // --- auth ---

  /** Who the gateway takes this client for: subject, roles, tenants, how it authenticated. */
  whoAmI(options?: CallOptions): Promise<WhoAmIResponse> {
    return this.rpc.unary(this.auth.whoAmI.bind(this.auth), {}, 'read', options);
  }

  /** The audit trail of mutating calls, newest first (admin only). */
  async listAuditEvents(filter: AuditFilter = {}, options?: CallOptions): Promise<{ events: AuditEvent[]; nextBeforeId: string }> {
    const request = { limit: filter.limit ?? 0, subject: filter.subject ?? '', method: filter.method ?? '', beforeId: filter.beforeId ?? '' };
    return this.rpc.unary(this.auth.listAuditEvents.bind(this.auth), request, 'read', options);
  }
}

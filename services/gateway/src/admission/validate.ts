// Request validation at the edge. Every rule names the field and the rule, so a client
// sees `spec.nodes must be between 1 and 4096, got 0` rather than a generic failure, and a
// request with several problems gets all of them in one INVALID_ARGUMENT ("; "-separated, one
// line), not one per round trip. Returns the request with defaults filled in.
import {
  CheckpointFormat, FailureClass, JobSpec, JobState, Launcher, NodeState, PRIORITY_CLASS_NAMES, TopologyRequirement, failureClassName, userRefProblem, type ListJobsRequest, type ListNodesRequest, type CheckpointSpec, type RetryPolicy, type SubmitJobRequest,
} from '@gantry/proto';
import { invalidArgument } from '@gantry/service-kit';
import { SUBJECT_TOKEN } from '@gantry/bus';
import { expandGpuTypes } from './gpu-aliases.js';

export const LIMITS = {
  maxNodes: 4096,
  /** The planner keeps a node's GPUs in a 32-bit mask (placement/cluster-state.ts). */
  maxGpusPerNode: 32,
  maxGpuTypes: 8,
  /** After short names (H100, A100 ...) are expanded into the models they stand for. */
  maxExpandedGpuTypes: 32,
  maxArgs: 1024,
  maxArgBytes: 128 * 1024,
  /** The whole spec travels in events and in every rank's assignment; NATS messages are at most 1 MiB. */
  maxSpecBytes: 256 * 1024,
  maxEnv: 512,
  maxTimeLimitSec: 30 * 24 * 3600,
  maxGraceSec: 3600,
  maxListPage: 1000,
  maxNodePage: 5000,
  maxRecoveries: 100,
  maxBackoffMs: 24 * 3600_000,
  /** PATH_MAX on Linux. */
  maxPathBytes: 4096,
  maxKeepLast: 100_000,
  maxGcGraceSec: 30 * 24 * 3600,
} as const;


/** Set by Gantry for every rank (in one launcher mode or the other); a job may not override them. */
export const RESERVED_ENV = new Set([
  'MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'NODE_RANK', 'NNODES', 'LOCAL_WORLD_SIZE', 'CUDA_VISIBLE_DEVICES', 'RANK', 'LOCAL_RANK', 'GROUP_RANK',
  'GANTRY_JOB_ID', 'GANTRY_JOB_NAME', 'GANTRY_TENANT', 'GANTRY_ATTEMPT', 'GANTRY_NODE_NAME', 'GANTRY_RESUME_FROM', 'GANTRY_EXIT_FILE', 'TORCHELASTIC_ERROR_FILE',
  'PET_NNODES', 'PET_NODE_RANK', 'PET_MASTER_ADDR', 'PET_MASTER_PORT', 'PET_NPROC_PER_NODE',
  'GANTRY_CHECKPOINT_DIR', 'GANTRY_CHECKPOINT_FORMAT', 'GANTRY_CHECKPOINT_RETENTION', 'GANTRY_STORAGE_TARGET', 'GANTRY_CKPT_URL', 'GANTRY_CKPT_TOKEN',
  'GANTRY_ADMIT_FLUSHES', 'GANTRY_ADMIT_PRELOAD',
]);

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^[A-Za-z0-9._-]{0,128}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

const fail = (msg: string): never => { throw invalidArgument(msg); };
const show = (v: unknown) => JSON.stringify(v);

/** Every problem of one request, reported together. */
class Problems {
  readonly list: string[] = [];

  add(msg: string): void {
    this.list.push(msg);
  }

  between(field: string, v: number, min: number, max: number): void {
    if (!Number.isInteger(v) || v < min || v > max) this.add(`${field} must be between ${min} and ${max}, got ${v}`);
  }

  /** Throws INVALID_ARGUMENT with every problem found, if there is any. */
  check(): void {
    if (this.list.length > 0) fail(this.list.join('; '));
  }
}

function between(field: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) fail(`${field} must be between ${min} and ${max}, got ${v}`);
}

export function requireToken(field: string, v: string): void {
  if (!v) fail(`${field} is required`);
  if (!SUBJECT_TOKEN.test(v)) fail(`${field} must match ${SUBJECT_TOKEN.source}, got ${show(v)}`);
}

function checkSpec(spec: JobSpec, p: Problems): void {
  spec.name ||= 'job';
  if (!NAME.test(spec.name)) p.add(`spec.name must match ${NAME.source}, got ${show(spec.name)}`);
  spec.tenant ||= 'default';
  if (!SUBJECT_TOKEN.test(spec.tenant)) p.add(`spec.tenant must match ${SUBJECT_TOKEN.source}, got ${show(spec.tenant)}`);
  p.between('spec.nodes', spec.nodes, 1, LIMITS.maxNodes);
  // 0 = every GPU of each chosen node.
  p.between('spec.gpus_per_node', spec.gpusPerNode, 0, LIMITS.maxGpusPerNode);
  checkGpuTypes(spec, p);
  if (spec.command.length === 0) p.add('spec.command must not be empty');
  if (spec.command.length > LIMITS.maxArgs) p.add(`spec.command must have at most ${LIMITS.maxArgs} arguments, got ${spec.command.length}`);
  if (spec.command.length > 0 && !spec.command[0]) p.add('spec.command[0] (the program) must not be empty');
  spec.command.forEach((a, i) => {
    if (a.includes('\0')) p.add(`spec.command[${i}] must not contain NUL characters`);
    if (Buffer.byteLength(a) > LIMITS.maxArgBytes) p.add(`spec.command[${i}] must be at most ${LIMITS.maxArgBytes} bytes`);
  });
  const envKeys = Object.keys(spec.env);
  if (envKeys.length > LIMITS.maxEnv) p.add(`spec.env must have at most ${LIMITS.maxEnv} variables, got ${envKeys.length}`);
  for (const [k, v] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(k)) p.add(`spec.env key ${show(k)} must match ${ENV_NAME.source}`);
    else if (RESERVED_ENV.has(k)) p.add(`spec.env.${k} is set by Gantry for every rank and cannot be overridden`);
    if (v.includes('\0')) p.add(`spec.env.${k} must not contain NUL characters`);
  }
  if (spec.workingDir && !spec.workingDir.startsWith('/')) p.add(`spec.working_dir must be an absolute path, got ${show(spec.workingDir)}`);
  if (spec.workingDir.includes('\0')) p.add('spec.working_dir must not contain NUL characters');
  // The agents' syntax (libs/proto user-ref.ts): a spec every agent would refuse is refused here,
  // at submit. Whether the user is allowed is each node's policy, checked there.
  if (spec.runAsUser) {
    const problem = userRefProblem(spec.runAsUser);
    if (problem) p.add(`spec.run_as_user ${problem}`);
  }
  spec.priorityClass ||= 'normal';
  if (!(PRIORITY_CLASS_NAMES as readonly string[]).includes(spec.priorityClass)) p.add(`spec.priority_class must be one of ${PRIORITY_CLASS_NAMES.join(', ')}, got ${show(spec.priorityClass)}`);
  p.between('spec.time_limit_seconds', spec.timeLimitSeconds, 0, LIMITS.maxTimeLimitSec);
  if (!(spec.topology in TopologyRequirement) || spec.topology === TopologyRequirement.UNRECOGNIZED) p.add(`spec.topology has unknown value ${spec.topology}`);
  if (!(spec.launcher in Launcher) || spec.launcher === Launcher.UNRECOGNIZED) p.add(`spec.launcher has unknown value ${spec.launcher}`);
  for (const [k, v] of Object.entries(spec.nodeSelector)) {
    if (!LABEL_KEY.test(k)) p.add(`spec.node_selector key ${show(k)} must match ${LABEL_KEY.source}`);
    else if (!LABEL_VALUE.test(v)) p.add(`spec.node_selector.${k} value must match ${LABEL_VALUE.source}, got ${show(v)}`);
  }
  spec.excludeNodes.forEach((n, i) => { if (!SUBJECT_TOKEN.test(n)) p.add(`spec.exclude_nodes[${i}] must be a node name matching ${SUBJECT_TOKEN.source}, got ${show(n)}`); });
  if (spec.masterPort !== 0) p.between('spec.master_port', spec.masterPort, 1024, 65535);
  p.between('spec.stop_grace_seconds', spec.stopGraceSeconds, 0, LIMITS.maxGraceSec);
  if (spec.retry) checkRetry(spec.retry, p);
  if (spec.checkpoint) checkCheckpoint(spec.checkpoint, p);
}

/**
 * JobSpec.checkpoint. The directory is watched on node rank 0's host and retention deletes
 * inside it, so it must be absolute, without '..' segments, and not the root itself.
 */
function checkCheckpoint(c: CheckpointSpec, p: Problems): void {
  const dir = c.dir;
  if (!dir) p.add('spec.checkpoint.dir is required when spec.checkpoint is set');
  else if (!dir.startsWith('/')) p.add(`spec.checkpoint.dir must be an absolute path, got ${show(dir)}`);
  else if (dir.includes('\0')) p.add('spec.checkpoint.dir must not contain NUL characters');
  else if (Buffer.byteLength(dir) > LIMITS.maxPathBytes) p.add(`spec.checkpoint.dir must be at most ${LIMITS.maxPathBytes} bytes, got ${Buffer.byteLength(dir)}`);
  else if (dir.split('/').includes('..')) p.add(`spec.checkpoint.dir must not contain '..' segments, got ${show(dir)}`);
  else if (dir.split('/').every((seg) => seg === '' || seg === '.')) p.add('spec.checkpoint.dir must not be the root directory');
  if (!(c.format in CheckpointFormat) || c.format === CheckpointFormat.UNRECOGNIZED) p.add(`spec.checkpoint.format has unknown value ${c.format}`);
  if (c.storageTarget && !NAME.test(c.storageTarget)) p.add(`spec.checkpoint.storage_target must match ${NAME.source}, got ${show(c.storageTarget)}`);
  const r = c.retention;
  if (r) {
    p.between('spec.checkpoint.retention.keep_last', r.keepLast, 0, LIMITS.maxKeepLast);
    p.between('spec.checkpoint.retention.keep_every', r.keepEvery, 0, Number.MAX_SAFE_INTEGER);
    p.between('spec.checkpoint.retention.gc_grace_seconds', r.gcGraceSeconds, 0, LIMITS.maxGcGraceSec);
  }
}

/** Short names (H100, A100-80GB ...) become the model names nvidia-smi reports, which the planner matches exactly. */
function checkGpuTypes(spec: JobSpec, p: Problems): void {
  if (spec.gpuTypes.length > LIMITS.maxGpuTypes) {
    p.add(`spec.gpu_types must have at most ${LIMITS.maxGpuTypes} entries, got ${spec.gpuTypes.length}`);
    return;
  }
  let ok = true;
  spec.gpuTypes.forEach((t, i) => {
    if (!t.trim() || t.length > 128) {
      p.add(`spec.gpu_types[${i}] must be a non-empty model name of at most 128 characters, got ${show(t)}`);
      ok = false;
    }
  });
  if (!ok) return;
  const expanded = expandGpuTypes(spec.gpuTypes);
  if (expanded.length > LIMITS.maxExpandedGpuTypes) p.add(`spec.gpu_types must stand for at most ${LIMITS.maxExpandedGpuTypes} models, got ${expanded.length}`);
  else spec.gpuTypes = expanded;
}

export function validateSpec(input: JobSpec | undefined): JobSpec {
  if (!input) return fail('spec is required');
  const spec = JobSpec.create({ ...input });
  const p = new Problems();
  checkSpec(spec, p);
  p.check();
  return checkSize(spec);
}

/** Last: the size of a spec with other problems means little (and its defaults are filled in now). */
function checkSize(spec: JobSpec): JobSpec {
  const size = JobSpec.encode(spec).finish().length;
  if (size > LIMITS.maxSpecBytes) fail(`spec must encode to at most ${LIMITS.maxSpecBytes} bytes (command, env and selectors together), got ${size}; put large scripts in a file the job reads`);
  return spec;
}

/** Classes a retry policy may name: the others (cancelled, time limit, preempted) are never retried. */
const RETRYABLE = new Set([FailureClass.FAILURE_CLASS_NODE_FAULT, FailureClass.FAILURE_CLASS_INFRASTRUCTURE, FailureClass.FAILURE_CLASS_APPLICATION, FailureClass.FAILURE_CLASS_GPU_CONTAINED, FailureClass.FAILURE_CLASS_HANG]);

function checkRetry(r: RetryPolicy, p: Problems): void {
  if (r.maxRecoveries !== undefined) p.between('spec.retry.max_recoveries', r.maxRecoveries, 0, LIMITS.maxRecoveries);
  if (r.backoffInitialMs !== undefined) p.between('spec.retry.backoff_initial_ms', r.backoffInitialMs, 0, LIMITS.maxBackoffMs);
  if (r.backoffMaxMs !== undefined) p.between('spec.retry.backoff_max_ms', r.backoffMaxMs, 0, LIMITS.maxBackoffMs);
  if (r.backoffJitter !== undefined && !(r.backoffJitter >= 0 && r.backoffJitter <= 1)) p.add(`spec.retry.backoff_jitter must be between 0 and 1, got ${r.backoffJitter}`);
  r.retryOn.forEach((c, i) => {
    if (!RETRYABLE.has(c)) p.add(`spec.retry.retry_on[${i}] must be one of ${[...RETRYABLE].map(failureClassName).join(', ')}, got ${FailureClass[c] ? failureClassName(c) : c}`);
  });
}

export function validateSubmit(req: SubmitJobRequest): SubmitJobRequest {
  if (!req.spec) return fail('spec is required');
  const spec = JobSpec.create({ ...req.spec });
  const p = new Problems();
  checkSpec(spec, p);
  if (req.idempotencyKey && !IDEMPOTENCY_KEY.test(req.idempotencyKey)) {
    p.add(`idempotency_key must be 1-128 characters of letters, digits, '.', '_', ':' or '-', got ${show(req.idempotencyKey)}`);
  }
  p.check();
  return { spec: checkSize(spec), idempotencyKey: req.idempotencyKey };
}

export function validateListJobs(req: ListJobsRequest): ListJobsRequest {
  req.states.forEach((s, i) => { if (!(s in JobState) || s === JobState.JOB_STATE_UNSPECIFIED || s === JobState.UNRECOGNIZED) fail(`states[${i}] is not a job state (${s})`); });
  if (req.tenant) requireToken('tenant', req.tenant);
  if (req.pageSize !== 0) between('page_size', req.pageSize, 1, LIMITS.maxListPage);
  return req;
}

export function validateListNodes(req: ListNodesRequest): ListNodesRequest {
  req.states.forEach((s, i) => { if (!(s in NodeState) || s === NodeState.NODE_STATE_UNSPECIFIED || s === NodeState.UNRECOGNIZED) fail(`states[${i}] is not a node state (${s})`); });
  if (req.pageSize !== 0) between('page_size', req.pageSize, 1, LIMITS.maxNodePage);
  return req;
}

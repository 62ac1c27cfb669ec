// Every field of every request is checked before anything touches Redis. A bad request gets
// INVALID_ARGUMENT naming each offending field and its rule ("shard_count must be between 1
// and 65536, got 0"), so a client can fix it without reading our code.
import type {
  BeginCheckpointRequest,
  CommitCheckpointRequest,
  GetCheckpointRequest,
  GetLatestCheckpointRequest,
  ListCheckpointsRequest,
  ListLastCommitsRequest,
  ReportCheckpointShardRequest,
} from '@gantry/proto';
import { SUBJECT_TOKEN } from '@gantry/bus';
import { CHECKPOINT_ID_PATTERN, MAX_SHARD_COUNT } from '@gantry/store';
import { invalidArgument } from '@gantry/service-kit';

/** Job ids travel in NATS subjects and Redis keys, so they use the subject-token alphabet. */
const JOB_ID_PATTERN = SUBJECT_TOKEN;
/** PATH_MAX on Linux; longer paths cannot be opened by the writers anyway. */
const MAX_PATH_BYTES = 4096;

type Check = (problems: string[]) => void;

function validate(...checks: Check[]): void {
  const problems: string[] = [];
  for (const check of checks) check(problems);
  if (problems.length > 0) throw invalidArgument(problems.join('; '));
}

const matches = (field: string, value: string, pattern: RegExp): Check => (problems) => {
  if (value === '') problems.push(`${field} is required`);
  else if (!pattern.test(value)) problems.push(`${field} must match ${pattern.source}`);
};

const intBetween = (field: string, value: number, min: number, max: number): Check => (problems) => {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    problems.push(`${field} must be between ${min} and ${max}, got ${value}`);
  }
};

/**
 * Absolute, so every rank and the agent that later looks for completion markers name the same
 * directory; no '..' segments, so admission and retention (which act on this path) cannot be
 * pointed outside the directory a path appears to name.
 */
const absolutePath = (field: string, value: string): Check => (problems) => {
  if (value === '') problems.push(`${field} is required`);
  else if (!value.startsWith('/')) problems.push(`${field} must be an absolute path`);
  else if (Buffer.byteLength(value) > MAX_PATH_BYTES) problems.push(`${field} must be at most ${MAX_PATH_BYTES} bytes, got ${Buffer.byteLength(value)}`);
  else if (value.includes('\0')) problems.push(`${field} must not contain NUL characters`);
  else if (value.split('/').includes('..')) problems.push(`${field} must not contain '..' segments`);
};

export function validateBegin(req: BeginCheckpointRequest): void {
  validate(
    matches('job_id', req.jobId, JOB_ID_PATTERN),
    // Attempts are numbered from 1 once a job is scheduled; nothing runs (or saves) in attempt 0.
    intBetween('attempt', req.attempt, 1, 0xffff_ffff),
    // uint64 arrives as a JS number; Redis scores and ids stay exact only up to 2^53 - 1.
    intBetween('step', req.step, 0, Number.MAX_SAFE_INTEGER),
    absolutePath('path', req.path),
    intBetween('shard_count', req.shardCount, 1, MAX_SHARD_COUNT),
  );
}

export function validateReportShard(req: ReportCheckpointShardRequest): void {
  validate(
    matches('checkpoint_id', req.checkpointId, CHECKPOINT_ID_PATTERN),
    // The checkpoint's own shard count is checked by the store, against the stored record.
    intBetween('shard_index', req.shardIndex, 0, MAX_SHARD_COUNT - 1),
    intBetween('bytes', req.bytes, 0, Number.MAX_SAFE_INTEGER),
  );
}

export function validateCommit(req: CommitCheckpointRequest): void {
  validate(matches('checkpoint_id', req.checkpointId, CHECKPOINT_ID_PATTERN));
}

export function validateGet(req: GetCheckpointRequest): void {
  validate(matches('checkpoint_id', req.checkpointId, CHECKPOINT_ID_PATTERN));
}

export function validateList(req: Pick<ListCheckpointsRequest, 'jobId'>): void {
  validate(matches('job_id', req.jobId, JOB_ID_PATTERN));
}

export function validateGetLatest(req: GetLatestCheckpointRequest): void {
  validate(matches('job_id', req.jobId, JOB_ID_PATTERN));
}

/** Problems named in one refusal of a list: enough to fix it, not a message as long as the list. */
const MAX_LIST_PROBLEMS = 5;

/** Every id is checked; a list with a bad one is refused whole (its caller builds it from job records). */
export function validateListLastCommits(req: ListLastCommitsRequest): void {
  const problems: string[] = [];
  for (const [i, id] of req.jobIds.entries()) {
    matches(`job_ids[${i}]`, id, JOB_ID_PATTERN)(problems);
    if (problems.length >= MAX_LIST_PROBLEMS) break;
  }
  if (problems.length > 0) throw invalidArgument(problems.join('; '));
}

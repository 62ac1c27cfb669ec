// `gantry job ...`: submit, list, status, explain, logs, watch, cancel.
import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import {
  ExplainJobResponse,
  Job,
  JobEvent,
  JobState,
  ListJobsResponse,
  StreamLogsResponse,
  SubmitJobResponse,
  RetryPolicy,
  CheckpointRetention,
  CheckpointSpec,
  isTerminalJobState,
  type CheckpointFormat,
  type FailureClass,
  jobStateName,
  type Launcher,
  type TopologyRequirement,
} from '@gantry/proto';
import { CHECKPOINT_FORMAT_NAMES, GantryError, backoffMs, parseCheckpointFormat, status, type JobSpecInput } from '@gantry/sdk';
import { attemptsTable, eventLine, jobDetail, jobTable, logLine } from '../format.js';
import { explainView } from '../format-explain.js';
import { finalizeSubmission, loadJobFile, mergeSubmissions, type Submission } from '../jobfile.js';
import { submitProblemsAsFlags } from '../flag-names.js';
import {
  LAUNCHERS,
  RETRYABLE_CLASS_NAMES,
  TOPOLOGIES,
  flagParser,
  parseDuration,
  parseRetryClass,
  parseInteger,
  parseJobStateFlag,
  parseKeyValue,
  parseLauncher,
  parseSeconds,
  parseTopology,
  repeatable,
} from '../parse.js';
import type { Session } from '../session.js';

interface SubmitFlags {
  file?: string;
  name?: string;
  tenant?: string;
  nodes?: number;
  gpusPerNode?: number;
  gpuType?: string[];
  priority?: string;
  timeLimit?: number;
  topology?: TopologyRequirement;
  launcher?: Launcher;
  env?: [string, string][];
  workdir?: string;
  runAs?: string;
  selector?: [string, string][];
  excludeNode?: string[];
  idempotencyKey?: string;
  masterPort?: number;
  stopGrace?: number;
  maxRecoveries?: number;
  retryOn?: FailureClass[];
  checkpointDir?: string;
  checkpointFormat?: CheckpointFormat;
  checkpointStorage?: string;
  checkpointAdmitFlushes?: boolean;
  checkpointKeepLast?: number;
  checkpointKeepEvery?: number;
  checkpointGcGrace?: number;
  checkpointDelete?: boolean;
  backoff?: number;
  backoffMax?: number;
  follow?: boolean;
  wait?: boolean;
}

/** The flags as a Submission, with only the fields that were given (so they override the file's). */
export function submissionFromFlags(o: SubmitFlags, command: string[]): Submission {
  const given = {
    name: o.name,
    tenant: o.tenant,
    nodes: o.nodes,
    gpusPerNode: o.gpusPerNode,
    gpuTypes: o.gpuType,
    priorityClass: o.priority,
    timeLimitSeconds: o.timeLimit,
    topology: o.topology,
    launcher: o.launcher,
    env: o.env && Object.fromEntries(o.env),
    workingDir: o.workdir,
    runAsUser: o.runAs,
    nodeSelector: o.selector && Object.fromEntries(o.selector),
    excludeNodes: o.excludeNode,
    masterPort: o.masterPort,
    stopGraceSeconds: o.stopGrace,
    retry: retryFromFlags(o),
    checkpoint: checkpointFromFlags(o),
    command: command.length ? command : undefined,
  };
  const spec = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as JobSpecInput;
  return o.idempotencyKey === undefined ? { spec } : { spec, idempotencyKey: o.idempotencyKey };
}

/** Only the --checkpoint-* flags given; mergeCheckpoint lays them over the job file's section. */
function checkpointFromFlags(o: SubmitFlags): CheckpointSpec | undefined {
  const retention = o.checkpointKeepLast !== undefined || o.checkpointKeepEvery !== undefined || o.checkpointGcGrace !== undefined || o.checkpointDelete !== undefined
    ? CheckpointRetention.create({ keepLast: o.checkpointKeepLast ?? 0, keepEvery: o.checkpointKeepEvery ?? 0, gcGraceSeconds: o.checkpointGcGrace ?? 0, delete: !!o.checkpointDelete })
    : undefined;
  if (o.checkpointDir === undefined && o.checkpointFormat === undefined && o.checkpointStorage === undefined && !o.checkpointAdmitFlushes && !retention) return undefined;
  return CheckpointSpec.create({ dir: o.checkpointDir ?? '', format: o.checkpointFormat ?? 0, storageTarget: o.checkpointStorage ?? '', retention, ...(o.checkpointAdmitFlushes && { admitFlushes: true }) });
}

function retryFromFlags(o: SubmitFlags): RetryPolicy | undefined {
  if (o.maxRecoveries === undefined && o.retryOn === undefined && o.backoff === undefined && o.backoffMax === undefined) return undefined;
  return RetryPolicy.create({ maxRecoveries: o.maxRecoveries, retryOn: o.retryOn ?? [], backoffInitialMs: o.backoff, backoffMaxMs: o.backoffMax });
}

const uint = (min = 0, max?: number) => flagParser((s) => parseInteger(s, max === undefined ? { min } : { min, max }));

/**
 * Follows a job's events until it ends and returns the last one. When the stream ends or
 * fails with UNAVAILABLE before that (a gateway restart), it watches again after a backoff;
 * the server replays the current state first, so events already seen are skipped by id.
 */
async function followJob(session: Session, jobId: string, onEvent: (ev: JobEvent) => void): Promise<JobEvent> {
  const client = session.gantry();
  const seen = new Set<string>();
  let last: JobEvent | undefined;
  for (let retry = 0; ; retry++) {
    try {
      for await (const ev of client.watchJob(jobId)) {
        if (ev.eventId && seen.has(ev.eventId)) continue;
        seen.add(ev.eventId);
        retry = 0;
        last = ev;
        onEvent(ev);
        if (isTerminalJobState(ev.toState)) return ev;
      }
    } catch (err) {
      if (!GantryError.is(err, status.UNAVAILABLE) || retry + 1 >= client.options.retry.maxAttempts) throw err;
    }
    if (retry + 1 >= client.options.retry.maxAttempts) {
      const where = last ? ` (last state ${jobStateName(last.toState)})` : '';
      throw new GantryError(status.UNAVAILABLE, `watch of job ${jobId} ended before the job finished${where}`);
    }
    await sleep(backoffMs(retry, client.options.retry));
  }
}

const succeeded = (ev: JobEvent) => (ev.toState === JobState.JOB_STATE_SUCCEEDED ? 0 : 1);

function printEvent(session: Session, ev: JobEvent): void {
  if (session.json) session.printJson(JobEvent.toJSON(ev), { line: true });
  else session.out(eventLine(ev));
}

function printLog(session: Session, res: StreamLogsResponse): void {
  if (session.json) return session.printJson(StreamLogsResponse.toJSON(res), { line: true });
  const { text, stderr } = logLine(res);
  if (stderr) session.err(text);
  else session.out(text);
}

/** Adds `job` and its subcommands to `program` (via .command(), so they inherit its exit and output settings). */
export function addJobCommands(program: Command, session: Session): void {
  const job = program.command('job').description('submit and inspect jobs');

  job
    .command('submit')
    .description('submit a job; the command every rank runs goes after "--"')
    .argument('[command...]', 'argv of each rank (after --)')
    .option('-f, --file <path>', 'job file (YAML); flags override its values')
    .option('--name <name>', 'job name')
    .option('--tenant <tenant>', 'tenant (team) the job belongs to')
    .option('--nodes <n>', 'gang size: nodes that start together (default 1)', uint(1))
    .option('--gpus-per-node <n>', 'GPUs on each node (default: every GPU of each chosen node)', uint())
    .option('--gpu-type <model>', 'acceptable GPU model (repeatable; any of)', repeatable(String))
    .option('--priority <class>', 'priority class')
    .option('--time-limit <duration>', 'wall-clock limit, e.g. 90s, 30m, 2h', flagParser(parseSeconds))
    .option('--topology <req>', `how tightly to pack the gang: ${Object.keys(TOPOLOGIES).join('|')}`, flagParser(parseTopology))
    .option('--launcher <mode>', `processes per node: ${Object.keys(LAUNCHERS).join('|')} (per-node: one, e.g. torchrun, the default; per-gpu: one per GPU with RANK and LOCAL_RANK)`, flagParser(parseLauncher))
    .option('--env <KEY=VALUE>', 'environment variable of every rank (repeatable)', repeatable(parseKeyValue))
    .option('--workdir <dir>', "working directory of every rank, on every node (default: the current directory; '' = the rank's own folder)")
    .option('--run-as <user>', "Unix user the ranks run as (a name or uid[:gid]); each node's agent must allow it for the tenant (default: the user the node maps the tenant to)")
    .option('--selector <key=value>', 'only nodes with this label (repeatable)', repeatable(parseKeyValue))
    .option('--exclude-node <name>', 'never place on this node (repeatable)', repeatable(String))
    .option('--idempotency-key <key>', 'submitting the same key twice creates one job (default: random)')
    .option('--master-port <port>', "rendezvous port on node rank 0's host (default: a free port the scheduler allocates)", uint(1, 65535))
    .option('--stop-grace <duration>', 'SIGTERM to SIGKILL grace when ranks are stopped', flagParser(parseSeconds))
    .option('--max-recoveries <n>', 'automatic recoveries allowed (default from the scheduling config: 3)', uint(0, 100))
    .option('--retry-on <class>', `failure class to recover from (repeatable): ${RETRYABLE_CLASS_NAMES.join('|')}; default node-fault, infrastructure, gpu-contained`, repeatable(parseRetryClass))
    .option('--backoff <duration>', 'delay before the first recovery, doubling per recovery (default 1s)', flagParser(parseDuration))
    .option('--backoff-max <duration>', 'longest delay between recoveries (default 60s)', flagParser(parseDuration))
    .option('--checkpoint-dir <dir>', "where the job writes checkpoints (absolute, same path on every node); node rank 0's agent finds and checks them, ranks get GANTRY_CHECKPOINT_DIR")
    .option('--checkpoint-format <format>', `checkpoint layout: ${Object.keys(CHECKPOINT_FORMAT_NAMES).join('|')} (default auto)`, flagParser(parseCheckpointFormat))
    .option('--checkpoint-storage <target>', 'storage target the checkpoints are written to (storage admission)')
    .option('--checkpoint-admit-flushes', "hold the ranks' checkpoint flushes (close/fsync of files written in the checkpoint directory) until storage admits them, for code that does not ask itself (LD_PRELOAD shim; docs/storage.md)")
    .option('--checkpoint-keep-last <n>', 'retention: keep the newest N committed checkpoints (default: all)', uint(0, 100_000))
    .option('--checkpoint-keep-every <n>', 'retention: also keep every checkpoint whose step is a multiple of N', uint(0))
    .option('--checkpoint-gc-grace <duration>', 'retention: delete CORRUPT and ABANDONED checkpoints this long after (default 1h)', flagParser(parseSeconds))
    .option('--checkpoint-delete', 'retention deletes for real (default: a dry run, recorded as events)')
    .option('--follow', "stream the job's logs, then exit with its result (0 if it succeeded)")
    .option('--wait', 'print its events until it ends, then exit with its result')
    .action(async (command: string[], o: SubmitFlags) => {
      const file = o.file === undefined ? { spec: {} } : loadJobFile(o.file);
      const submission = finalizeSubmission(mergeSubmissions(file, submissionFromFlags(o, command)), session.cwd());
      const client = session.gantry();
      const options = submission.idempotencyKey === undefined ? {} : { idempotencyKey: submission.idempotencyKey };
      const res = await client.submitJob(submission.spec, options).catch((err: unknown) => {
        // The server names proto fields; the user typed flags.
        if (GantryError.is(err, status.INVALID_ARGUMENT)) throw new GantryError(err.code, submitProblemsAsFlags(err.details), { cause: err });
        throw err;
      });
      const id = res.job?.id ?? '';
      const streaming = o.follow || o.wait;
      if (session.json) session.printJson(SubmitJobResponse.toJSON(res), { line: !!streaming });
      else session.out(res.created ? `job ${id} submitted` : `job ${id} already exists (same idempotency key)`);
      if (o.follow) {
        for await (const line of client.streamLogs(id, { follow: true })) printLog(session, line);
        const last = await followJob(session, id, () => {});
        if (!session.json) session.err(`job ${id} ${jobStateName(last.toState)}${last.reason ? `: ${last.reason}` : ''}`);
        session.exitCode = succeeded(last);
      } else if (o.wait) {
        session.exitCode = succeeded(await followJob(session, id, (ev) => printEvent(session, ev)));
      }
    });

  job
    .command('list')
    .description('list jobs, newest first')
    .option('--state <state>', 'only jobs in this state (repeatable)', repeatable(parseJobStateFlag))
    .option('--tenant <tenant>', "only this tenant's jobs")
    .option('--limit <n>', 'jobs per page, 1..1000 (default 100)', uint(1, 1000))
    .option('--all', 'fetch every page, not only the first')
    .action(async (o: { state?: JobState[]; tenant?: string; limit?: number; all?: boolean }) => {
      const client = session.gantry();
      const filter = { states: o.state ?? [], tenant: o.tenant ?? '', pageSize: o.limit ?? 0 };
      let page: ListJobsResponse;
      if (o.all) {
        const jobs: Job[] = [];
        for await (const j of client.listAllJobs(filter)) jobs.push(j);
        page = { jobs, nextPageToken: '' };
      } else {
        page = await client.listJobs(filter);
      }
      if (session.json) return session.printJson(ListJobsResponse.toJSON(page));
      session.out(jobTable(page.jobs, session.now()));
      if (page.nextPageToken) session.err('(more jobs: use --all)');
    });

  job
    .command('status')
    .description("a job's state, reason and attempts, with each rank's node and GPUs")
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      const j = await session.gantry().getJob(id);
      if (session.json) session.printJson(Job.toJSON(j));
      else session.out(jobDetail(j, session.now()));
    });

  job
    .command('explain')
    .description('why a pending job waits (queue position, quota, nodes rejected per reason, reservation), or why a placed job got its nodes')
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      const client = session.gantry();
      const res = await client.explainJob(id);
      if (session.json) return session.printJson(ExplainJobResponse.toJSON(res));
      // A placed or ended job: its current attempt's nodes come from the job itself.
      const j = res.state === JobState.JOB_STATE_PENDING ? undefined : await client.getJob(id);
      session.out(explainView(res, j, session.now()));
    });

  job
    .command('logs')
    .description("print a job's logs, each line prefixed with [node-rank N] (per GPU: [node-rank N local-rank L]); stderr lines go to stderr")
    .argument('<id>', 'job id')
    .option('-f, --follow', 'keep streaming until the job ends')
    .option('--node-rank <n>', "only this node rank (Gantry's process, or processes, on one node)", uint())
    .addOption(new Option('--rank <n>', 'the same as --node-rank').argParser(uint()).hideHelp())
    .option('--local-rank <n>', 'per-GPU jobs: only this LOCAL_RANK on each node', uint())
    .option('--attempt <n>', 'only this attempt (default: every attempt)', uint(1))
    .action(async (id: string, o: { follow?: boolean; nodeRank?: number; rank?: number; localRank?: number; attempt?: number }) => {
      const rank = o.nodeRank ?? o.rank;
      const options = { follow: !!o.follow, ...(rank !== undefined && { rank }), ...(o.attempt !== undefined && { attempt: o.attempt }) };
      for await (const line of session.gantry().streamLogs(id, options)) {
        if (o.localRank === undefined || line.line?.localRank === o.localRank) printLog(session, line);
      }
    });

  job
    .command('watch')
    .description("print a job's events until it ends; exit 0 if it succeeded, 1 otherwise")
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      session.exitCode = succeeded(await followJob(session, id, (ev) => printEvent(session, ev)));
    });

  job
    .command('attempts')
    .description("a job's attempts: nodes, recovery grade, times, failure class, the rank and node that failed first with evidence, checkpoint resumed from, next try")
    .argument('<id>', 'job id')
    .action(async (id: string) => {
      const j = await session.gantry().getJob(id);
      if (session.json) return session.printJson((Job.toJSON(j) as { attempts?: unknown[] }).attempts ?? []);
      session.out(attemptsTable(j, session.now()));
    });

  job
    .command('retry')
    .description('start a FAILED job again as a new attempt, from its newest committed checkpoint')
    .argument('<id>', 'job id')
    .option('--reason <text>', 'why, recorded on the attempt', '')
    .action(async (id: string, o: { reason: string }) => {
      const j = await session.gantry().retryJob(id, o.reason);
      if (session.json) session.printJson(Job.toJSON(j));
      else session.out(`job ${j.id} ${jobStateName(j.state)}: attempt ${j.attempt + 1} will resume from its newest committed checkpoint`);
    });

  job
    .command('cancel')
    .description('cancel a job (its ranks are stopped)')
    .argument('<id>', 'job id')
    .option('--reason <text>', 'why, recorded on the job', '')
    .action(async (id: string, o: { reason: string }) => {
      const j = await session.gantry().cancelJob(id, o.reason);
      if (session.json) session.printJson(Job.toJSON(j));
      else session.out(`job ${j.id} ${jobStateName(j.state)}`);
    });

}

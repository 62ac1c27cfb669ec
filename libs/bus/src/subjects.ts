// Every NATS subject and JetStream stream Gantry uses, in one place. Tokens that come from
// user or host input (node names, job ids) are validated before they reach a subject.

const PREFIX = 'gantry.v1';

/** Node names and job ids are restricted so they are always a single subject token. */
export const SUBJECT_TOKEN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

function token(value: string, what: string): string {
  if (!SUBJECT_TOKEN.test(value)) throw new Error(`${what} ${JSON.stringify(value)} is not a valid subject token`);
  return value;
}

export const subjects = {
  /**
   * Agent -> scheduler, request/reply (core NATS): registration after start and reconnect. Per
   * node, like every subject an agent publishes on, so NATS permissions can hold each agent to
   * its own node's subjects (libs/bus/src/nats-auth.ts).
   */
  agentRegister: (node: string) => `${PREFIX}.agent.register.${token(node, 'node')}`,
  agentRegisterAll: `${PREFIX}.agent.register.*`,
  /** Agent -> scheduler (core NATS): liveness plus the ranks the agent is running. */
  agentHeartbeat: (node: string) => `${PREFIX}.agent.heartbeat.${token(node, 'node')}`,
  agentHeartbeatAll: `${PREFIX}.agent.heartbeat.*`,
  /** Scheduler -> agent, request/reply (core NATS): assignments and stops. */
  agentCommand: (node: string) => `${PREFIX}.agent.command.${token(node, 'node')}`,
  agentCommandAll: `${PREFIX}.agent.command.*`,
  /** Agent -> scheduler (JetStream AGENT_EVENTS): rank started / exited. */
  rankEvent: (node: string) => `${PREFIX}.agent.rank.${token(node, 'node')}`,
  rankEventAll: `${PREFIX}.agent.rank.*`,
  /** Agent -> scheduler (JetStream AGENT_EVENTS): XID and health events, sent at once. */
  hostEvent: (node: string) => `${PREFIX}.agent.host.${token(node, 'node')}`,
  hostEventAll: `${PREFIX}.agent.host.*`,
  /** Agent -> scheduler (JetStream TELEMETRY): one TelemetryBatch per interval. */
  telemetry: (node: string) => `${PREFIX}.telemetry.${token(node, 'node')}`,
  telemetryAll: `${PREFIX}.telemetry.*`,
  /** Agent -> gateway (JetStream LOGS): LogBatch per rank, ending in the node that ran it (for permissions). */
  logs: (jobId: string, attempt: number, rank: number, node: string) => `${PREFIX}.logs.${token(jobId, 'job id')}.${attempt}.${rank}.${token(node, 'node')}`,
  /** Everything one node may publish as logs (any job, attempt, rank). */
  logsOfNode: (node: string) => `${PREFIX}.logs.*.*.*.${token(node, 'node')}`,
  logsOfJob: (jobId: string) => `${PREFIX}.logs.${token(jobId, 'job id')}.>`,
  /**
   * Filter for one job's output, optionally one attempt and/or one rank. Without either it is
   * the whole job, which also matches batches stored before logs subjects named the node.
   */
  logsFilter: (jobId: string, attempt?: number, rank?: number) => (!attempt && rank === undefined
    ? `${PREFIX}.logs.${token(jobId, 'job id')}.>`
    : `${PREFIX}.logs.${token(jobId, 'job id')}.${attempt || '*'}.${rank ?? '*'}.*`),
  logsAll: `${PREFIX}.logs.>`,
  /** Scheduler outbox relay -> anyone (JetStream EVENTS): job and node transitions. */
  jobEvent: (jobId: string) => `${PREFIX}.events.job.${token(jobId, 'job id')}`,
  jobEventAll: `${PREFIX}.events.job.*`,
  nodeEvent: (node: string) => `${PREFIX}.events.node.${token(node, 'node')}`,
  nodeEventAll: `${PREFIX}.events.node.*`,
  /**
   * Agent -> checkpoint service (JetStream GANTRY_CHECKPOINTS): CheckpointReport, de-duplicated
   * by Nats-Msg-Id. Names the reporting node, so an agent can only report as itself; the
   * service drops a report whose payload names another node or job than the subject.
   */
  checkpointReport: (node: string, jobId: string) => `${PREFIX}.checkpoint.report.${token(node, 'node')}.${token(jobId, 'job id')}`,
  checkpointReportsOfNode: (node: string) => `${PREFIX}.checkpoint.report.${token(node, 'node')}.*`,
  /** Also matches reports stored before they named their node (checkpoint.report.{job}). */
  checkpointReportAll: `${PREFIX}.checkpoint.report.>`,
  /** Checkpoint service -> agent, request/reply (core NATS): CheckpointDeleteRequest (retention). */
  checkpointDelete: (node: string) => `${PREFIX}.agent.checkpoint-delete.${token(node, 'node')}`,
  checkpointDeleteAll: `${PREFIX}.agent.checkpoint-delete.*`,
  /** Checkpoint service -> agent, request/reply (core NATS): re-check a checkpoint before it is offered for resume (CheckpointReport both ways). */
  checkpointVerify: (node: string) => `${PREFIX}.agent.checkpoint-verify.${token(node, 'node')}`,
  checkpointVerifyAll: `${PREFIX}.agent.checkpoint-verify.*`,
  /** Scheduler-internal (core NATS): wake the scheduling loop after a submit. */
  schedulerKick: `${PREFIX}.scheduler.kick`,
} as const;

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Seconds to keep messages. */
  maxAgeSec: number;
  maxBytes: number;
  /** JetStream de-duplication window for Nats-Msg-Id, seconds. */
  duplicateWindowSec: number;
  /** Message count limit (default: none). */
  maxMsgs?: number;
  /**
   * When a limit is reached: `old` drops the oldest messages, `new` refuses the publish (the
   * publisher gets an error and keeps the message). Default `old`.
   */
  discard?: 'old' | 'new';
  /** `limits` (default) keeps messages until a limit; `workqueue` deletes each once its consumer acknowledged it. */
  retention?: 'limits' | 'workqueue';
}

const DAY = 24 * 3600;
const GiB = 1024 ** 3;

export const streams = {
  /**
   * Rank starts/exits and host events, each read by one scheduler consumer. A work queue holds
   * exactly what the scheduler has not acknowledged yet, with no age limit, and refuses new
   * messages when full instead of dropping old ones: during a long scheduler outage an exit is
   * never silently lost, the agent gets a publish error and keeps it in its state file.
   * `gantry_nats_stream_fill_ratio` warns long before the limit.
   */
  agentEvents: { name: 'GANTRY_AGENT_EVENTS', subjects: [subjects.rankEventAll, subjects.hostEventAll], maxAgeSec: 0, maxBytes: 2 * GiB, maxMsgs: 5_000_000, duplicateWindowSec: 3600, discard: 'new', retention: 'workqueue' },
  telemetry: { name: 'GANTRY_TELEMETRY', subjects: [subjects.telemetryAll], maxAgeSec: 1 * DAY, maxBytes: 4 * GiB, duplicateWindowSec: 600 },
  logs: { name: 'GANTRY_LOGS', subjects: [subjects.logsAll], maxAgeSec: 7 * DAY, maxBytes: 8 * GiB, duplicateWindowSec: 600 },
  events: { name: 'GANTRY_EVENTS', subjects: [subjects.jobEventAll, subjects.nodeEventAll], maxAgeSec: 30 * DAY, maxBytes: 2 * GiB, duplicateWindowSec: 3600 },
  /**
   * Checkpoint reports, read by the checkpoint service. A work queue like agent events: a
   * report waits (the agent keeps it on a refused publish) rather than being dropped, and the
   * hour-long duplicate window absorbs the same report resent after an agent restart.
   */
  checkpoints: { name: 'GANTRY_CHECKPOINTS', subjects: [subjects.checkpointReportAll], maxAgeSec: 0, maxBytes: 1 * GiB, maxMsgs: 1_000_000, duplicateWindowSec: 3600, discard: 'new', retention: 'workqueue' },
} satisfies Record<string, StreamSpec>;

/** Durable consumer names, one per purpose. */
export const consumers = {
  schedulerAgentEvents: 'scheduler-agent-events',
  schedulerTelemetry: 'scheduler-telemetry',
  schedulerHostEvents: 'scheduler-host-events',
  checkpointReports: 'checkpoint-reports',
  /** The checkpoint service follows job events to expire the records of finished jobs. */
  checkpointJobEvents: 'checkpoint-job-events',
} as const;

/**
 * The node an agent subject names: its last token (heartbeat, register, rank, host,
 * telemetry and logs subjects all end in it). NATS permissions guarantee an agent can publish
 * only subjects ending in its own node, so the scheduler trusts this token, not the payload.
 */
export function subjectNode(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}

/** The node and job a checkpoint report's subject names; undefined for any other subject. */
export function checkpointReportSender(subject: string): { node: string; jobId: string } | undefined {
  const head = `${PREFIX}.checkpoint.report.`;
  if (!subject.startsWith(head)) return undefined;
  const rest = subject.slice(head.length).split('.');
  return rest.length === 2 && rest.every((t) => SUBJECT_TOKEN.test(t)) ? { node: rest[0]!, jobId: rest[1]! } : undefined;
}

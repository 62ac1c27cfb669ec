// `gantry job explain`: why a pending job waits, or why a placed job got its nodes. Pure
// functions of the ExplainJobResponse (and the job, for the nodes of its current attempt) and
// `now`, so they are tested without a server.
import { JobState, jobStateName, type ExplainJobResponse, type Job, type NodeRejection } from '@gantry/proto';
import { formatAge } from './format.js';

const count = new Intl.NumberFormat('en-US');

/**
 * "4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200]; 3: node quarantined":
 * most nodes first (ties by reason), only the first entry says "nodes", empty counts left out.
 * The same text the scheduler's `formatRejections` writes.
 */
export function formatRejections(rejections: readonly NodeRejection[]): string {
  return rejections
    .filter((r) => r.nodes > 0)
    .sort((a, b) => b.nodes - a.nodes || (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0))
    .map((r, k) => `${count.format(r.nodes)}${k === 0 ? (r.nodes === 1 ? ' node' : ' nodes') : ''}: ${r.reason}`)
    .join('; ');
}

/** At most this many node names, then "(+N more)". */
const NAMES_SHOWN = 2;

export function nodeList(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_SHOWN).join(', ');
  return names.length > NAMES_SHOWN ? `${shown} (+${names.length - NAMES_SHOWN} more)` : shown;
}

/** "14:05:00" (UTC), with the date in front when it is not `now`'s day. */
export function clockTime(t: Date, now: Date): string {
  const [date, time] = t.toISOString().split('T') as [string, string];
  const hms = time.slice(0, 8);
  return date === now.toISOString().slice(0, 10) ? hms : `${date} ${hms}`;
}

/** "starts in 12m at 14:05:00 on node-1, node-2 (+2 more)"; "starts now" once the time has come. */
export function reservationLine(start: Date, nodes: readonly string[], now: Date): string {
  const when = start.getTime() > now.getTime() ? `in ${formatAge(now, start)}` : 'now';
  return `starts ${when} at ${clockTime(start, now)}${nodes.length ? ` on ${nodeList(nodes)}` : ''}`;
}

function pendingView(res: ExplainJobResponse, now: Date): string[] {
  const lines = [`job ${res.jobId} PENDING${res.queuePosition > 0 ? `, position ${res.queuePosition} in the queue` : ''}`];
  if (res.message || res.pendingReason) {
    const reason = res.pendingReason ? `(reason: ${res.pendingReason})` : '';
    lines.push(`waiting: ${[res.message, reason].filter(Boolean).join('   ')}`);
  }
  if (res.quota) lines.push(`quota: ${res.quota}`);
  const rejections = formatRejections(res.rejections);
  if (rejections) lines.push(`nodes: ${rejections}`);
  if (res.reservationStart) lines.push(`reservation: ${reservationLine(res.reservationStart, res.reservationNodes, now)}`);
  if (res.evaluatedAt) lines.push(`evaluated ${formatAge(res.evaluatedAt, now)} ago`);
  return lines;
}

/** The nodes of the job's current attempt, in rank order, each once. */
export function attemptNodes(job: Job | undefined): string[] {
  if (!job) return [];
  const attempt = job.attempts.find((a) => a.number === job.attempt) ?? job.attempts.at(-1);
  if (!attempt) return [];
  return [...new Set([...attempt.placement].sort((a, b) => a.rank - b.rank).map((p) => p.node))];
}

function placedView(res: ExplainJobResponse, job: Job | undefined): string[] {
  const state = res.state === JobState.JOB_STATE_UNSPECIFIED ? '-' : jobStateName(res.state);
  const attempt = job && job.attempt > 0 ? ` (attempt ${job.attempt})` : '';
  const lines = [`job ${res.jobId} ${state}${attempt}`];
  if (res.message) lines.push(`reason: ${res.message}`);
  const current = job?.attempts.find((a) => a.number === job.attempt) ?? job?.attempts.at(-1);
  const explanation = res.placementExplanation || current?.placementExplanation;
  if (explanation) lines.push(`placement: ${explanation}`);
  const nodes = attemptNodes(job);
  if (nodes.length) lines.push(`nodes: ${nodes.join(', ')}`);
  return lines;
}

/**
 * The explain view. A pending job: queue position, what it waits for and why, its tenant's
 * quota, the nodes rejected per reason, its backfill reservation, and the evaluation's age.
 * Any other state: the state (and reason), why it was placed where it is, and the nodes of its
 * current attempt (from `job`, when given).
 */
export function explainView(res: ExplainJobResponse, job: Job | undefined, now: Date): string {
  const lines = res.state === JobState.JOB_STATE_PENDING ? pendingView(res, now) : placedView(res, job);
  return lines.join('\n') + '\n';
}

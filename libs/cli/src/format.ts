// Human-readable views of proto messages (tables, detail pages, one-line events and log lines).
// Pure functions of their input (and `now`), so they are tested without a server.
import Table from 'cli-table3';
import {
  LogStream,
  failureClassName,
  recoveryGradeName,
  jobStateName,
  nodeStateName,
  type Attempt,
  type CheckpointSpec,
  type Job,
  type JobSpec,
  type JobEvent,
  type Node,
  type StreamLogsResponse,
  JobState,
  Launcher,
  RankPhase,
} from '@gantry/proto';
import { checkpointFormatName } from '@gantry/sdk';
import { launcherName, topologyName } from './parse.js';

// Borderless and colourless, like kubectl: easy to read, grep and diff.
const PLAIN_CHARS = Object.fromEntries(
  ['top', 'top-mid', 'top-left', 'top-right', 'bottom', 'bottom-mid', 'bottom-left', 'bottom-right', 'left', 'left-mid', 'mid', 'mid-mid', 'right', 'right-mid'].map((c) => [c, '']),
);

export function table(head: string[], rows: string[][], indent = ''): string {
  const t = new Table({
    head,
    chars: { ...PLAIN_CHARS, middle: '  ' },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  t.push(...rows);
  return t.toString().split('\n').map((line) => indent + line.trimEnd()).join('\n') + '\n';
}

/** "Key:  value" lines, aligned. */
export function fields(rows: [string, string][], indent = ''): string {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${indent}${`${k}:`.padEnd(width)}${v}`.trimEnd() + '\n').join('');
}

/** Coarse age, like kubectl: 42s, 5m, 3h, 2d. */
export function formatAge(then: Date | undefined, now: Date): string {
  if (!then) return '-';
  const s = Math.max(0, Math.floor((now.getTime() - then.getTime()) / 1_000));
  if (s < 120) return `${s}s`;
  if (s < 7_200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3_600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export function formatTime(t: Date | undefined, now: Date): string {
  return t ? `${t.toISOString()} (${formatAge(t, now)} ago)` : '-';
}

const state = (s: JobState) => (s === JobState.JOB_STATE_UNSPECIFIED ? '-' : jobStateName(s));

/** GPUs per node as the spec asks: 0 is every GPU of each node. */
const perNode = (n: number, unit = true) => (n === 0 ? (unit ? 'all GPUs' : 'all') : unit ? `${n} GPU${n === 1 ? '' : 's'}` : String(n));

function resources(job: Job): string {
  const spec = job.spec;
  if (!spec) return '-';
  const gpus = spec.gpuTypes.length ? ` (${spec.gpuTypes.join('|')})` : '';
  return `${spec.nodes} node${spec.nodes === 1 ? '' : 's'} x ${perNode(spec.gpusPerNode)}${gpus}`;
}

// Characters that never need quoting in a POSIX shell word.
const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** The argv as a shell command line that would give the same argv back (`python -c 'print(1)'`). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (SHELL_SAFE.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ');
}

export function jobTable(jobs: Job[], now: Date): string {
  const rows = jobs.map((j) => [
    j.id,
    j.spec?.name ?? '',
    j.spec?.tenant ?? '',
    state(j.state),
    j.spec ? `${j.spec.nodes}x${perNode(j.spec.gpusPerNode, false)}` : '-',
    String(j.attempt),
    formatAge(j.createdAt, now),
  ]);
  return table(['ID', 'NAME', 'TENANT', 'STATE', 'NODESxGPUS', 'ATTEMPT', 'AGE'], rows);
}

/**
 * "[node-fault] node fault: XID 79 ... on GPU 3 of sim-node-1". Gantry's reasons name the
 * node rank and node; the where and how are added only when the reason does not say them
 * (the scheduler says "rank N" for the node rank, the CLI "node-rank N").
 */
function failureLine(a: Attempt): string | undefined {
  const f = a.failure;
  if (!f) return undefined;
  const cls = f.failureClass ? `[${failureClassName(f.failureClass)}] ` : '';
  const where = [f.rank !== undefined ? `node-rank ${f.rank}` : '', f.node ? `on ${f.node}` : ''].filter(Boolean).join(' ');
  const how = [f.exitCode !== undefined ? `exit code ${f.exitCode}` : '', f.signal ? `signal ${f.signal}` : ''].filter(Boolean).join(', ');
  const said = (part: string) => !part || [part, part.replace('node-rank', 'rank'), part.replace('exit code', 'exited with code'), part.replace('signal', 'was killed by')].some((p) => f.reason.includes(p));
  return cls + [said(where) ? '' : where, said(how) ? '' : how, f.reason].filter(Boolean).join(': ');
}

/** "in 4s" / "4s ago" / "now". */
function relative(t: Date, now: Date): string {
  const s = Math.round((t.getTime() - now.getTime()) / 1000);
  if (s > 0) return `in ${s}s`;
  return s === 0 ? 'now' : `${-s}s ago`;
}

/**
 * The state, with the recovery in progress when there is one:
 * "RECOVERING (attempt 3 of 5, next try in 4s, excluding sim-node-2)".
 */
export function stateLine(job: Job, now: Date): string {
  const r = job.recovery;
  const recovering = job.state === JobState.JOB_STATE_RECOVERING || (job.state === JobState.JOB_STATE_PENDING && r?.decided);
  if (!recovering || !r) return state(job.state);
  const parts: string[] = [];
  if (job.maxRecoveries > 0 || r.decided) parts.push(`attempt ${job.attempt + 1} of ${job.maxRecoveries + 1}`);
  if (!r.decided) parts.push('attributing the failure');
  else if (r.notBefore) parts.push(`${recoveryGradeName(r.grade)}, next try ${relative(r.notBefore, now)}`);
  if (job.excludedNodes.length > 0) parts.push(`excluding ${job.excludedNodes.join(', ')}`);
  return `${state(job.state)} (${parts.join(', ')})`;
}

/** `gantry job attempts`: one row per attempt, the recovery chain at a glance. */
export function attemptsTable(job: Job, now: Date): string {
  const rows = job.attempts.map((a) => {
    const f = a.failure;
    const first = f && (f.rank !== undefined || f.node) ? [f.rank !== undefined ? `node-rank ${f.rank}` : '', f.node].filter(Boolean).join(' on ') : '-';
    return [
      String(a.number),
      [...new Set(a.placement.map((p) => p.node))].join(',') || '-',
      recoveryGradeName(a.grade) || (a.number === 1 ? 'first' : a.gradeReason || '-'),
      a.startedAt ? a.startedAt.toISOString() : '-',
      a.finishedAt ? a.finishedAt.toISOString() : '-',
      f?.failureClass ? failureClassName(f.failureClass) : f ? '-' : (a.finishedAt ? '-' : 'running'),
      first,
      f?.evidence || f?.reason || '-',
      a.resumedFromCheckpoint || '-',
      a.nextTryAt ? `${a.nextTryAt.toISOString()} (${relative(a.nextTryAt, now)})` : '-',
    ];
  });
  const compacted = job.attemptsCompacted > 0 ? `${compactedNote(job)}\n` : '';
  return table(['ATTEMPT', 'NODES', 'GRADE', 'STARTED', 'ENDED', 'CLASS', 'FIRST FAILURE', 'EVIDENCE', 'RESUMED FROM', 'NEXT TRY'], rows) + compacted + `${stateLine(job, now)}; recoveries used ${job.recoveries}${job.maxRecoveries ? ` of ${job.maxRecoveries}` : ''}\n`;
}

/**
 * "4 older attempts (1-4) compacted: ...": the record keeps only the newest attempts (the
 * scheduler's JOB_ATTEMPTS_KEPT); the job's events still hold the dropped ones.
 */
export function compactedNote(job: Job): string {
  const n = job.attemptsCompacted;
  const range = n === 1 ? '1' : `1-${n}`;
  return `${n} older attempt${n === 1 ? '' : 's'} (${range}) compacted from the record; \`gantry job watch ${job.id}\` replays their events`;
}

function attemptView(a: Attempt, now: Date): string {
  const status = new Map(a.ranks.map((r) => [r.rank, r]));
  const ranks = [...new Set([...a.placement.map((p) => p.rank), ...a.ranks.map((r) => r.rank)])].sort((x, y) => x - y);
  const placement = new Map(a.placement.map((p) => [p.rank, p]));
  const rows = ranks.map((rank) => {
    const p = placement.get(rank);
    const r = status.get(rank);
    const phase = r && r.phase !== RankPhase.RANK_PHASE_UNSPECIFIED ? (RankPhase[r.phase] ?? '?').replace(/^RANK_PHASE_/, '') : '-';
    const exit = r?.signal ? r.signal : r?.exitCode !== undefined ? String(r.exitCode) : '-';
    return [String(rank), p?.node ?? '-', p ? p.gpuIndices.join(',') : '-', phase, r?.pid ? String(r.pid) : '-', exit, r?.error || '-'];
  });
  const info: [string, string][] = [
    ['Scheduled', formatTime(a.scheduledAt, now)],
    ['Started', formatTime(a.startedAt, now)],
    ['Finished', formatTime(a.finishedAt, now)],
  ];
  if (a.grade) info.push(['Recovery', `${recoveryGradeName(a.grade)}${a.gradeReason ? `: ${a.gradeReason}` : ''}`]);
  if (a.resumedFromCheckpoint) info.push(['Resumed from', a.resumedFromCheckpoint]);
  const master = a.placement.find((p) => p.rank === 0);
  if (master && a.masterPort) info.push(['Rendezvous', `${master.address || master.node}:${a.masterPort} (MASTER_ADDR:MASTER_PORT)`]);
  const failure = failureLine(a);
  if (failure) info.push(['Failure', failure]);
  return `Attempt ${a.number}:\n` + fields(info, '  ') + (rows.length ? table(['NODE-RANK', 'NODE', 'GPUS', 'PHASE', 'PID', 'EXIT', 'ERROR'], rows, '  ') : '');
}

/** `gantry job status`: the job, then each attempt (newest last) with its per-rank placement. */
export function jobDetail(job: Job, now: Date): string {
  const spec = job.spec;
  const rows: [string, string][] = [
    ['ID', job.id],
    ['Name', spec?.name || '-'],
    ['Tenant', spec?.tenant || '-'],
    ['State', stateLine(job, now)],
    ['Reason', job.reason || '-'],
    ...(job.explanation ? [['Why', job.explanation] as [string, string]] : []),
    ['Attempt', String(job.attempt) + (job.attemptsCompacted > 0 ? ` (${compactedNote(job)})` : '')],
    ['Resources', resources(job)],
    ['Priority', spec?.priorityClass || '-'],
    ['Topology', spec ? topologyName(spec.topology) : '-'],
    ['Time limit', spec?.timeLimitSeconds ? `${spec.timeLimitSeconds}s` : '-'],
    ['Launcher', spec ? launcherView(spec.launcher, spec.gpusPerNode) : '-'],
    ['Workdir', spec ? spec.workingDir || "(each rank's own folder on its node)" : '-'],
    ['Run as', spec ? runAsView(spec) : '-'],
    ['Checkpoint', spec?.checkpoint?.dir ? checkpointView(spec.checkpoint) : '-'],
    ['Command', spec?.command.length ? shellQuote(spec.command) : '-'],
    ['Created', formatTime(job.createdAt, now)],
    ['Updated', formatTime(job.updatedAt, now)],
    ['Finished', formatTime(job.finishedAt, now)],
  ];
  return [fields(rows), ...job.attempts.map((a) => attemptView(a, now))].join('\n');
}

/** Directory, layout, storage target, and whether the ranks' checkpoint flushes wait for storage admission. */
function checkpointView(c: CheckpointSpec): string {
  const parts = [c.format ? checkpointFormatName(c.format) : 'auto'];
  if (c.storageTarget) parts.push(`storage target ${c.storageTarget}`);
  if (c.admitFlushes) parts.push('flushes admitted (close/fsync wait for a storage lease)');
  return `${c.dir} (${parts.join(', ')})`;
}

/** The job's own user, or where its ranks' user comes from (each node's agent.yaml maps the tenant). */
function runAsView(spec: JobSpec): string {
  return spec.runAsUser || `(the user each node maps tenant ${spec.tenant || 'default'} to)`;
}

function launcherView(l: Launcher, gpusPerNode: number): string {
  const name = launcherName(l);
  const each = gpusPerNode === 0 ? 'every GPU' : `${gpusPerNode} GPU${gpusPerNode === 1 ? '' : 's'}`;
  return l === Launcher.LAUNCHER_PER_GPU ? `${name} (one process per GPU, ${each} per node)` : `${name} (one process per node with ${each})`;
}

/** One line per event: time, transition, attempt, reason. */
export function eventLine(ev: JobEvent): string {
  const transition = ev.fromState === JobState.JOB_STATE_UNSPECIFIED ? state(ev.toState) : `${state(ev.fromState)} -> ${state(ev.toState)}`;
  const parts = [ev.time?.toISOString() ?? '-', ev.jobId, transition, `attempt ${ev.attempt}`];
  if (ev.reason) parts.push(ev.reason);
  return parts.join('  ');
}

/** "[node-rank 1] ..." (per GPU: "[node-rank 1 local-rank 3] ..."): Gantry's process per node, not torch's RANK. */
export function logLine(res: StreamLogsResponse): { text: string; stderr: boolean } {
  const text = (res.line?.text ?? '').replace(/\r?\n$/, '');
  const local = res.line?.localRank === undefined ? '' : ` local-rank ${res.line.localRank}`;
  return { text: `[node-rank ${res.rank}${local}] ${text}`, stderr: res.line?.stream === LogStream.LOG_STREAM_STDERR };
}

function gpusFree(node: Node): number {
  const busy = new Set(node.allocations.map((a) => a.gpuIndex));
  return node.gpus.filter((g) => !busy.has(g.index)).length;
}

function models(node: Node): string {
  return [...new Set(node.gpus.map((g) => g.model))].join(',') || '-';
}

function topology(node: Node): string {
  const t = node.topology;
  return t ? [t.nvlinkDomain, t.leafSwitch, t.spine].map((x) => x || '-').join('/') : '-';
}

/** "READY", "READY,cordoned", "QUARANTINED,lemon": the state and the flags an operator scans for. */
export function nodeStateLabel(n: Node): string {
  return [nodeStateName(n.state), n.cordoned ? 'cordoned' : '', n.lemon ? 'lemon' : ''].filter(Boolean).join(',');
}

export function nodeTable(nodes: Node[], now: Date): string {
  const rows = nodes.map((n) => [
    n.name,
    nodeStateLabel(n),
    `${gpusFree(n)}/${n.gpus.length}`,
    models(n),
    topology(n),
    n.healthScore > 0 ? n.healthScore.toFixed(1) : '0',
    formatAge(n.lastHeartbeat, now),
  ]);
  return table(['NAME', 'STATE', 'GPUS FREE/TOTAL', 'MODEL', 'NVLINK/SWITCH/SPINE', 'HEALTH', 'HEARTBEAT'], rows);
}

export function nodeDetail(node: Node, now: Date): string {
  const t = node.topology;
  const rows: [string, string][] = [
    ['Name', node.name],
    ['State', nodeStateLabel(node)],
    ['Reason', node.reason || '-'],
    ['Health score', node.healthScore.toFixed(1)],
    ...node.conditions.map((c): [string, string] => [`  ${c.type}`, `${c.status ? 'True' : 'False'} ${c.reason}${c.message ? `: ${c.message}` : ''} (${formatAge(c.since, now)})`]),
    ['Address', node.address || '-'],
    ['GPUs free', `${gpusFree(node)}/${node.gpus.length}`],
    ['NVLink domain', t?.nvlinkDomain || '-'],
    ['Leaf switch', t?.leafSwitch || '-'],
    ['Spine', t?.spine || '-'],
    ['Rack', t?.rack || '-'],
    ['NIC class', t?.nicClass || '-'],
    ['Labels', Object.entries(node.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-'],
    ['Agent', [node.agentVersion, node.deviceBackend].filter(Boolean).join(', ') || '-'],
    ['Registered', formatTime(node.registeredAt, now)],
    ['Last heartbeat', formatTime(node.lastHeartbeat, now)],
  ];
  const alloc = new Map(node.allocations.map((a) => [a.gpuIndex, a]));
  const gpus = node.gpus.map((g) => {
    const a = alloc.get(g.index);
    return [String(g.index), g.model, `${g.memoryMib} MiB`, g.pciBusId || '-', g.uuid || '-', a ? `${a.jobId} (attempt ${a.attempt}, node-rank ${a.rank})` : '-'];
  });
  return fields(rows) + (gpus.length ? '\n' + table(['GPU', 'MODEL', 'MEMORY', 'PCI BUS', 'UUID', 'ALLOCATED TO'], gpus) : '');
}

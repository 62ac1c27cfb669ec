// A FoundCheckpoint of libs/checkpoint-layouts as the CheckpointReport the checkpoint service
// reads, with the digest and message id that make a re-send harmless.
import { createHash } from 'node:crypto';
import type { FoundCheckpoint, FormatOption } from '@gantry/checkpoint-layouts';
import { CheckpointFormat, CheckpointReport, CheckpointRetention } from '@gantry/proto';

/** A report must fit in a NATS message (1 MiB by default): at most this many files are listed. */
export const MAX_REPORTED_FILES = 5_000;

const FORMATS: Record<string, CheckpointFormat> = {
  dcp: CheckpointFormat.CHECKPOINT_FORMAT_DCP,
  megatron: CheckpointFormat.CHECKPOINT_FORMAT_MEGATRON,
  deepspeed: CheckpointFormat.CHECKPOINT_FORMAT_DEEPSPEED,
  hf: CheckpointFormat.CHECKPOINT_FORMAT_HF,
  torchtitan: CheckpointFormat.CHECKPOINT_FORMAT_TORCHTITAN,
  marker: CheckpointFormat.CHECKPOINT_FORMAT_MARKER,
};

export function formatEnum(name: string): CheckpointFormat {
  return FORMATS[name] ?? CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED;
}

/** The library's name of a format enum ('auto' for unspecified). */
export function formatName(f: CheckpointFormat): FormatOption {
  return (Object.entries(FORMATS).find(([, v]) => v === f)?.[0] as FormatOption | undefined) ?? 'auto';
}

/** GANTRY_CHECKPOINT_FORMAT as the library's option; anything unknown is 'auto'. */
export function formatOption(name: string | undefined): FormatOption {
  return name && name in FORMATS ? (name as FormatOption) : 'auto';
}

export function parseRetention(json: string): CheckpointRetention | undefined {
  if (!json) return undefined;
  try {
    return CheckpointRetention.fromJSON(JSON.parse(json));
  } catch {
    return undefined;
  }
}

export interface ReportContext {
  jobId: string;
  attempt: number;
  node: string;
  dir: string;
  retention: string;
  source: 'discovery' | 'explicit';
  attemptEnded: boolean;
  /** The step to use when the directory name has none (an explicit report gave it). */
  step?: number;
}

export function toReport(found: FoundCheckpoint, ctx: ReportContext, now = new Date()): CheckpointReport {
  const files = found.files.slice(0, MAX_REPORTED_FILES).map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 ?? '' }));
  const reasons = [...found.reasons];
  if (found.files.length > MAX_REPORTED_FILES) reasons.push(`manifest cut to ${MAX_REPORTED_FILES} of ${found.files.length} files`);
  const step = found.step ?? ctx.step;
  return CheckpointReport.create({
    jobId: ctx.jobId, attempt: ctx.attempt, node: ctx.node, dir: ctx.dir, path: found.path, name: found.name,
    ...(step !== undefined && { step }),
    format: formatEnum(found.format), variant: found.variant ?? '', status: found.status, reasons, files, totalBytes: found.totalBytes,
    seenAt: now, attemptEnded: ctx.attemptEnded, source: ctx.source, retention: parseRetention(ctx.retention),
  });
}

/** A vanished checkpoint directory. */
export function goneReport(path: string, ctx: ReportContext, now = new Date()): CheckpointReport {
  return CheckpointReport.create({
    jobId: ctx.jobId, attempt: ctx.attempt, node: ctx.node, dir: ctx.dir, path, name: path.split('/').pop() ?? '',
    ...(ctx.step !== undefined && { step: ctx.step }),
    status: 'GONE', seenAt: now, attemptEnded: ctx.attemptEnded, source: ctx.source, retention: parseRetention(ctx.retention),
  });
}

/**
 * What identifies a report's content: its status, reasons and manifest (not when it was seen).
 * An INCOMPLETE one also counts whether its attempt ended, which turns it ABANDONED.
 */
export function digestOf(r: CheckpointReport): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([r.status, r.step ?? null, r.reasons, r.files.map((f) => [f.path, f.size, f.sha256]), r.status === 'INCOMPLETE' && r.attemptEnded]));
  return h.digest('hex');
}

export function messageId(r: CheckpointReport, seq: number, digest: string): string {
  const p = createHash('sha256').update(r.path).digest('hex').slice(0, 16);
  return `ckpt.${r.jobId}.${p}.${seq}.${digest.slice(0, 16)}`;
}

// When the jobs a pass may preempt last committed a checkpoint: preemption takes the victims
// that lose the least work since then. The checkpoint service owns those facts; the scheduler
// asks it (ListLastCommits) instead of reading its Redis keys, and treats the answers as hints:
// a pass never waits long for them and never fails without them. Unknown times order a victim
// by its start instead, which is what they meant before the job's first commit.
import type { Job } from '@gantry/proto';
import { throttledWarn, type Logger } from '@gantry/service-kit';
import { nearCompletion, tenantConfig, type SchedulingConfig } from './placement/index.js';
import { priorityOf, runningJob } from './snapshot.js';

/** The part of ResumeSource used here. */
export interface LastCommitSource {
  lastCommits(jobIds: readonly string[], timeoutMs: number): Promise<Map<string, number>>;
}

export interface LastCommitOptions {
  /** How long an answer is used before it is asked again: a commit newer than this may be missed. */
  ttlMs: number;
  /** The whole call's deadline; a pass (1 s by default) must not wait longer. */
  timeoutMs: number;
  /** After a failed call, the service is not asked again for this long (the pass uses what it has). */
  retryAfterMs: number;
  /** Answers not asked for again for this long are dropped (jobs that ended or stopped being candidates). */
  forgetAfterMs: number;
  /** At most one warning per this long while the service cannot answer. */
  warnEveryMs: number;
  now: () => number;
}

const DEFAULTS: LastCommitOptions = { ttlMs: 2_000, timeoutMs: 300, retryAfterMs: 5_000, forgetAfterMs: 10 * 60_000, warnEveryMs: 60_000, now: Date.now };

interface Entry {
  /** Undefined: the service answered that the job has no commit. */
  ms: number | undefined;
  answeredAt: number;
}

export class LastCommitTimes {
  private readonly opts: LastCommitOptions;
  private readonly cache = new Map<string, Entry>();
  private failedAt = -Infinity;
  private prunedAt = 0;
  private readonly warn: (key: string, fields: Record<string, unknown>) => void;

  constructor(private readonly source: LastCommitSource, private readonly log: Logger, opts: Partial<LastCommitOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
    this.warn = throttledWarn(log, 'cannot learn last checkpoint commits from the checkpoint service; preemption orders by the last answers it gave (or by start time)', this.opts.warnEveryMs);
  }

  /**
   * Last commit times (ms) of `jobIds` that have one, as fresh as the TTL allows; when the
   * checkpoint service does not answer in time, the last answer it gave for each job. Never throws.
   */
  async get(jobIds: readonly string[]): Promise<Map<string, number>> {
    const now = this.opts.now();
    this.prune(now);
    const stale = jobIds.filter((id) => {
      const e = this.cache.get(id);
      return e === undefined || now - e.answeredAt >= this.opts.ttlMs;
    });
    if (stale.length > 0 && now - this.failedAt >= this.opts.retryAfterMs) {
      try {
        const answer = await this.source.lastCommits(stale, this.opts.timeoutMs);
        const at = this.opts.now();
        for (const id of stale) this.cache.set(id, { ms: answer.get(id), answeredAt: at });
        if (this.failedAt !== -Infinity) this.log.info('the checkpoint service answers last checkpoint commits again');
        this.failedAt = -Infinity;
      } catch (err) {
        this.failedAt = this.opts.now();
        this.warn('unavailable', { err: (err as Error).message, jobs: stale.length, retryInMs: this.opts.retryAfterMs });
      }
    }
    const out = new Map<string, number>();
    for (const id of jobIds) {
      const ms = this.cache.get(id)?.ms;
      if (ms !== undefined) out.set(id, ms);
    }
    return out;
  }

  private prune(now: number): void {
    if (now - this.prunedAt < this.opts.ttlMs) return;
    this.prunedAt = now;
    for (const [id, e] of this.cache) if (now - e.answeredAt >= this.opts.forgetAfterMs) this.cache.delete(id);
  }
}

/**
 * The jobs holding GPUs that this pass could choose as preemption victims, the only ones whose
 * last commit matters: none when preemption is off or nothing waits; else those not protected
 * (preempted within the window, near completion) that rank below the highest waiting priority,
 * or that lend quota in a cohort that may be reclaimed whatever their priority. Erring wide
 * only costs a longer request; erring narrow would order a victim by its start time.
 */
export function preemptionCandidates(holding: readonly Job[], pending: readonly Job[], config: SchedulingConfig, now: number): string[] {
  const p = config.preemption;
  if (!p.enabled || pending.length === 0) return [];
  let top = -Infinity;
  for (const job of pending) top = Math.max(top, priorityOf(job.spec?.priorityClass ?? ''));
  const out: string[] = [];
  for (const job of holding) {
    const v = runningJob(job, undefined, false);
    if (v.preemptedAt !== undefined && now - v.preemptedAt < p.windowSec * 1000) continue;
    if (nearCompletion(v, now, p.nearCompletionFraction)) continue;
    const reclaimable = p.reclaimWithinCohort === 'any' && tenantConfig(config, v.tenant).cohort !== undefined;
    if (v.priority < top || reclaimable) out.push(v.id);
  }
  return out;
}

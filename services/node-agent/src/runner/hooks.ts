// Work done around a rank's life attaches to the runner as hooks instead of growing
// RankRunner.assign, after Nomad's alloc-runner hooks (client/allocrunner: prerun, postrun,
// update, stop ...). The runner calls every hook at each point of the life of a node rank:
//
//   prestart   before its processes are spawned; may add variables to their environment (the
//              per-job checkpoint token, GANTRY_CKPT_URL). A throw refuses the assignment.
//   poststart  after they were spawned, and again for each running rank a restarted agent
//              re-adopts (`restored`: the assignment's environment is not kept, so a hook that
//              needs it after a restart persists what it needs at prestart/poststart).
//   stop       when the scheduler (or the partition guard) asks the rank to stop, before SIGTERM.
//   exited     once, when its last process has ended (also for ranks that ended unseen).
//
// Hooks run in the order given; one hook's failure is logged and does not stop the others or
// the rank (except at prestart, as said). They are synchronous so the runner's state changes
// stay in one turn of the event loop; anything slow is started here and runs on its own.
import type { Logger } from 'pino';
import type { RankRecord } from './state-file.js';

export interface RankHookContext {
  readonly jobId: string;
  readonly attempt: number;
  /** The node rank. */
  readonly rank: number;
  readonly record: RankRecord;
  /**
   * The assignment's environment (job env plus the launcher variables), at prestart and
   * poststart of a fresh start; absent for a re-adopted rank and after.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** poststart for a rank a previous agent process started. */
  readonly restored?: boolean;
}

export interface RankHook {
  readonly name: string;
  /** Returns variables to add to every process of the rank. */
  prestart?(ctx: RankHookContext): Record<string, string> | void;
  poststart?(ctx: RankHookContext): void;
  stop?(ctx: RankHookContext, reason: string): void;
  exited?(ctx: RankHookContext): void;
  /** The agent is shutting down (ranks keep running): stop timers, flush what is pending. */
  shutdown?(): Promise<void> | void;
}

export class RankHooks {
  constructor(private readonly hooks: readonly RankHook[], private readonly log: Logger) {}

  get list(): readonly RankHook[] {
    return this.hooks;
  }

  /**
   * Every hook's additions, in order; neither the assignment's variables nor an earlier hook's
   * are overridden. Throws to refuse the start.
   */
  prestart(ctx: RankHookContext): Record<string, string> {
    const out: Record<string, string> = {};
    for (const h of this.hooks) {
      const add = h.prestart?.(ctx);
      if (add) for (const [k, v] of Object.entries(add)) if (!(k in out) && !(ctx.env && k in ctx.env)) out[k] = v;
    }
    return out;
  }

  poststart(ctx: RankHookContext): void {
    this.each('poststart', ctx, (h) => h.poststart?.(ctx));
  }

  stop(ctx: RankHookContext, reason: string): void {
    this.each('stop', ctx, (h) => h.stop?.(ctx, reason));
  }

  exited(ctx: RankHookContext): void {
    this.each('exited', ctx, (h) => h.exited?.(ctx));
  }

  async shutdown(): Promise<void> {
    for (const h of this.hooks) {
      try {
        await h.shutdown?.();
      } catch (err) {
        this.log.warn({ hook: h.name, err: (err as Error).message }, 'rank hook shutdown failed');
      }
    }
  }

  private each(point: string, ctx: RankHookContext, fn: (h: RankHook) => void): void {
    for (const h of this.hooks) {
      try {
        fn(h);
      } catch (err) {
        this.log.warn({ hook: h.name, point, job: ctx.jobId, attempt: ctx.attempt, rank: ctx.rank, err: (err as Error).message }, 'rank hook failed');
      }
    }
  }
}

export function hookContext(rec: RankRecord, extra: { env?: Record<string, string>; restored?: boolean } = {}): RankHookContext {
  return { jobId: rec.jobId, attempt: rec.attempt, rank: rec.rank, record: rec, ...extra };
}

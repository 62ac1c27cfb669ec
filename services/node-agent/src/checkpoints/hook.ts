// The checkpoint hook (issue 11), attached to the rank runner (runner/hooks.ts):
//
//   prestart   a rank of a job with a checkpoint directory (GANTRY_CHECKPOINT_DIR in its
//              assignment) gets GANTRY_CKPT_URL (this agent's loopback endpoint) and
//              GANTRY_CKPT_TOKEN (one per job attempt on this host) for explicit reports.
//   poststart  on the host of node rank 0 only, the directory is watched (watcher.ts); a
//              restarted agent resumes the watches its state file lists.
//   exited     node rank 0's exit ends the attempt here: one last pass reports what is still
//              incomplete as abandoned by the attempt, then the watch stops. The token is
//              revoked when the last rank of the attempt on this host has exited, and the
//              storage leases its ranks took through the endpoint are given back then.
//
// A job with checkpoint.admit_flushes (GANTRY_ADMIT_FLUSHES=1 from the scheduler) also gets
// GANTRY_ADMIT_PRELOAD, this agent's libgantry-admit.so (native/gantry-admit.c), which the rank
// wrapper preloads into the command: its checkpoint flushes then take write leases on this
// endpoint. A rank asking for it on an agent without the shim, or without storage admission
// (checkpointAddr), is refused with that reason instead of running unadmitted.
//
// Deletions asked by retention are served here too (delete.ts), confined to the directory
// this agent watched for the job.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { RankHook, RankHookContext } from '../runner/hooks.js';
import { rankKey } from '../runner/state-file.js';
import { CheckpointStateFile, type WatchRecord } from './state.js';
import { CheckpointWatcher, type Publish } from './watcher.js';
import { CheckpointEndpoint } from './endpoint.js';
import { StorageRoute } from './storage-route.js';
import { handleDelete } from './delete.js';
import { CheckpointReport, type CheckpointDeleteReply, type CheckpointDeleteRequest } from '@gantry/proto';
import { checkCheckpoint } from '@gantry/checkpoint-layouts';
import { confined } from './confine.js';
import { formatName, goneReport, toReport } from './report.js';

/** How often a watched directory is scanned unless CHECKPOINT_POLL_MS says otherwise. */
export const DEFAULT_POLL_MS = 5_000;
/** A job's directory is remembered this long after its last watch (deletions may come later). */
const DIR_MEMORY_MS = 7 * 24 * 3600_000;

export interface CheckpointHookOptions {
  node: string;
  stateDir: string;
  publish: Publish;
  log: Logger;
  pollMs?: number;
  /** The checkpoint service (StorageService) for the endpoint's storage routes; unset: they answer 501. */
  checkpointAddr?: string;
  /** The agent's internal TLS files (agent.yaml internalTls / INTERNAL_TLS_*), for that call. */
  internalTls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  /** libgantry-admit.so (agent.yaml admitShim), for jobs with checkpoint.admit_flushes. */
  admitShim?: string | undefined;
}

/** Set by the scheduler for a job with checkpoint.admit_flushes. */
export const ADMIT_FLUSHES_ENV = 'GANTRY_ADMIT_FLUSHES';
/** The shim the rank wrapper preloads into the command (runner/wrapper.ts). */
export const ADMIT_PRELOAD_ENV = 'GANTRY_ADMIT_PRELOAD';

export class CheckpointHook implements RankHook {
  readonly name = 'checkpoints';
  readonly state: CheckpointStateFile;
  readonly endpoint: CheckpointEndpoint;
  readonly storage: StorageRoute;
  private readonly watchers = new Map<string, CheckpointWatcher>();
  private readonly pollMs: number;

  constructor(private readonly opts: CheckpointHookOptions) {
    this.state = new CheckpointStateFile(opts.stateDir);
    this.pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    this.storage = new StorageRoute(opts.checkpointAddr, opts.node, opts.log, opts.internalTls);
    this.endpoint = new CheckpointEndpoint({ node: opts.node, state: this.state, publish: opts.publish, log: opts.log, storage: this.storage });
  }

  /** Before any rank starts: the endpoint must be up for prestart to hand out its URL. */
  async start(): Promise<void> {
    await this.endpoint.start();
    this.prune();
    // What a job with checkpoint.admit_flushes gets here: its ranks are refused without both.
    this.opts.log.info({ admitShim: this.opts.admitShim ?? null, storageAdmission: !!this.opts.checkpointAddr }, this.opts.admitShim && this.opts.checkpointAddr ? 'checkpoint flushes of jobs that allow it are admitted' : 'checkpoint flushes cannot be admitted here: ranks of jobs with checkpoint.admit_flushes are refused');
  }

  /**
   * Forgets jobs not watched for DIR_MEMORY_MS (their directory, what was reported of them), so
   * the state file does not grow with every job the host ever ran.
   */
  prune(now = Date.now()): void {
    const st = this.state.state;
    const watched = new Set(Object.values(st.watches).map((w) => w.jobId));
    const tokened = new Set(Object.values(st.tokens).map((t) => t.jobId));
    for (const [job, d] of Object.entries(st.dirs)) if (now - d.at > DIR_MEMORY_MS && !watched.has(job) && !tokened.has(job)) delete st.dirs[job];
    for (const job of Object.keys(st.reported)) if (!st.dirs[job] && !watched.has(job) && !tokened.has(job)) delete st.reported[job];
    this.state.save();
  }

  prestart(ctx: RankHookContext): Record<string, string> | void {
    const dir = ctx.env?.GANTRY_CHECKPOINT_DIR;
    if (!dir) return;
    // Checked before anything is recorded: a refused rank leaves no token behind.
    const preload = ctx.env?.[ADMIT_FLUSHES_ENV] === '1' ? this.admitPreload() : undefined;
    const tokens = this.state.state.tokens;
    let token = Object.keys(tokens).find((t) => tokens[t]!.jobId === ctx.jobId && tokens[t]!.attempt === ctx.attempt);
    if (!token) {
      token = randomBytes(32).toString('hex');
      tokens[token] = { jobId: ctx.jobId, attempt: ctx.attempt, dir, format: ctx.env?.GANTRY_CHECKPOINT_FORMAT ?? 'auto', retention: ctx.env?.GANTRY_CHECKPOINT_RETENTION ?? '', storageTarget: ctx.env?.GANTRY_STORAGE_TARGET ?? '', ranks: [] };
    }
    if (!tokens[token]!.ranks.includes(ctx.rank)) tokens[token]!.ranks.push(ctx.rank);
    this.state.state.dirs[ctx.jobId] = { dir, at: Date.now() };
    this.state.save();
    return { GANTRY_CKPT_URL: this.endpoint.url, GANTRY_CKPT_TOKEN: token, ...(preload && { [ADMIT_PRELOAD_ENV]: preload }) };
  }

  /** The shim to preload for a job that asked for admitted flushes; throws (refusing the rank) when this agent cannot admit them. */
  private admitPreload(): string {
    const shim = this.opts.admitShim;
    if (!shim) throw new Error('the job asks for admitted checkpoint flushes (checkpoint.admit_flushes) but this agent has no flush admission shim: build it with pnpm build:admit and set admitShim in agent.yaml (GANTRY_ADMIT_SHIM)');
    if (!existsSync(shim)) throw new Error(`the job asks for admitted checkpoint flushes (checkpoint.admit_flushes) but this agent's flush admission shim ${shim} is gone`);
    if (!this.opts.checkpointAddr) throw new Error('the job asks for admitted checkpoint flushes (checkpoint.admit_flushes) but this agent has no storage admission: set checkpointAddr in agent.yaml (GANTRY_CHECKPOINT_ADDR)');
    return shim;
  }

  poststart(ctx: RankHookContext): void {
    const key = rankKey(ctx.jobId, ctx.attempt, ctx.rank);
    let w: WatchRecord | undefined = this.state.state.watches[key];
    if (!w && !ctx.restored) {
      const env = ctx.env ?? {};
      // Node rank 0's host watches (NODE_RANK in both launcher modes).
      if (!env.GANTRY_CHECKPOINT_DIR || env.NODE_RANK !== '0') return;
      w = { jobId: ctx.jobId, attempt: ctx.attempt, rank: ctx.rank, dir: env.GANTRY_CHECKPOINT_DIR, format: env.GANTRY_CHECKPOINT_FORMAT ?? 'auto', retention: env.GANTRY_CHECKPOINT_RETENTION ?? '' };
      this.state.state.watches[key] = w;
      this.state.save();
    }
    if (!w || this.watchers.has(key)) return;
    const watcher = new CheckpointWatcher(w, { node: this.opts.node, state: this.state, publish: this.opts.publish, log: this.opts.log, pollMs: this.pollMs });
    this.watchers.set(key, watcher);
    watcher.start();
    this.opts.log.info({ job: w.jobId, attempt: w.attempt, dir: w.dir, format: w.format, restored: ctx.restored || undefined }, 'watching checkpoint directory');
  }

  exited(ctx: RankHookContext): void {
    const key = rankKey(ctx.jobId, ctx.attempt, ctx.rank);
    const tokens = this.state.state.tokens;
    let changed = false;
    for (const [t, rec] of Object.entries(tokens)) {
      if (rec.jobId !== ctx.jobId || rec.attempt !== ctx.attempt) continue;
      changed = true;
      rec.ranks = rec.ranks.filter((r) => r !== ctx.rank);
      if (rec.ranks.length === 0) {
        delete tokens[t];
        this.storage.releaseAttempt(rec.jobId, rec.attempt);
      }
    }
    const w = this.state.state.watches[key];
    if (!w) {
      // A job without a checkpoint directory left nothing here: no write per rank exit (issue 14).
      if (changed) this.state.save();
      return;
    }
    const watcher = this.watchers.get(key) ?? new CheckpointWatcher(w, { node: this.opts.node, state: this.state, publish: this.opts.publish, log: this.opts.log, pollMs: this.pollMs });
    watcher.stop();
    this.watchers.delete(key);
    this.state.state.dirs[ctx.jobId] = { dir: w.dir, at: Date.now() };
    this.state.save();
    // The last pass; the watch is forgotten only once it went through (else a restart redoes it).
    void watcher.scan(true).then(() => {
      delete this.state.state.watches[key];
      this.prune();
    }, (err: unknown) => this.opts.log.warn({ job: ctx.jobId, err: (err as Error).message }, 'last checkpoint pass failed'));
  }

  deleteCheckpoint(req: CheckpointDeleteRequest): Promise<CheckpointDeleteReply> {
    return handleDelete(req, this.state, this.opts.log);
  }

  /**
   * The checkpoint service asks before it offers a committed checkpoint for resume: the layout
   * check runs again now, on the path as it is. The answer's status is COMPLETE, INCOMPLETE,
   * CORRUPT, GONE (no such directory), or '' when this agent cannot tell (it never watched
   * that job's directory, or the path is not inside it).
   */
  async verify(req: CheckpointReport): Promise<CheckpointReport> {
    const known = this.state.state.dirs[req.jobId];
    const unknown = (why: string) => CheckpointReport.create({ ...req, status: '', reasons: [why] });
    if (!known || known.dir !== req.dir) return unknown(`this agent has not watched ${req.dir} for job ${req.jobId}`);
    const ctx = { jobId: req.jobId, attempt: req.attempt, node: this.opts.node, dir: known.dir, retention: '', source: 'discovery' as const, attemptEnded: false, ...(req.step !== undefined && { step: req.step }) };
    try {
      await confined(known.dir, req.path);
    } catch (err) {
      if (/does not exist/.test((err as Error).message)) return goneReport(req.path, ctx);
      return unknown((err as Error).message);
    }
    const found = await checkCheckpoint(req.path, formatName(req.format));
    return toReport({ ...found, path: req.path }, ctx);
  }

  /** Watches of ranks that exited while no agent ran get their last pass at the runner's start (exited). */
  async shutdown(): Promise<void> {
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
    await this.endpoint.stop();
    this.storage.close();
  }
}

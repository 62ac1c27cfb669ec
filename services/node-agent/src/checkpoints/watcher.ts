// Watches one job's checkpoint directory on the host of its node rank 0: every poll it runs
// the layout check (libs/checkpoint-layouts) over the directory and publishes what changed,
// one CheckpointReport per checkpoint, and a GONE report for a checkpoint whose directory
// vanished. What was last published per path is kept in the hook's state file, so a restarted
// agent does not report the same thing again (and the message id makes a re-send within the
// stream's duplicate window a no-op anyway).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { scanCheckpoints } from '@gantry/checkpoint-layouts';
import { CheckpointReport } from '@gantry/proto';
import { encode, subjects } from '@gantry/bus';
import type { CheckpointStateFile, WatchRecord } from './state.js';
import { digestOf, formatOption, goneReport, messageId, toReport, type ReportContext } from './report.js';

/** Publishes to JetStream with a message id (Nats-Msg-Id); rejects when not stored. */
export type Publish = (subject: string, data: Uint8Array, msgId: string) => Promise<void>;

export interface WatcherDeps {
  node: string;
  state: CheckpointStateFile;
  publish: Publish;
  log: Logger;
  pollMs: number;
}

/** How deep and how many entries the change fingerprint looks at; past that it always scans. */
const FINGERPRINT_DEPTH = 4;
const FINGERPRINT_MAX_ENTRIES = 100_000;

/**
 * A digest of every entry under `dir` (path, kind, size, mtime), or undefined when the tree is
 * too big to fingerprint. Stat calls only: far cheaper than the layout checks, which read and
 * unpickle metadata files, so an unchanged directory costs a walk, not a check.
 */
export async function treeFingerprint(dir: string): Promise<string | undefined> {
  const h = createHash('sha256');
  let entries = 0;
  const walk = async (abs: string, rel: string, depth: number): Promise<boolean> => {
    let names: string[];
    try {
      names = (await readdir(abs)).sort();
    } catch {
      h.update(`${rel}\0unreadable\n`);
      return true;
    }
    for (const name of names) {
      if (++entries > FINGERPRINT_MAX_ENTRIES) return false;
      const p = join(abs, name);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f';
      h.update(`${rel}/${name}\0${kind}\0${st.size}\0${st.mtimeMs}\n`);
      if (kind === 'd') {
        if (depth >= FINGERPRINT_DEPTH) return false;
        if (!(await walk(p, `${rel}/${name}`, depth + 1))) return false;
      }
    }
    return true;
  };
  return (await walk(dir, '', 1)) ? h.digest('hex') : undefined;
}

export class CheckpointWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The tree as of the last full check; an unchanged tree is not checked again. */
  private lastFingerprint: string | undefined;
  /** Full layout checks run (for tests and the debug log). */
  checks = 0;

  constructor(readonly watch: WatchRecord, private readonly deps: WatcherDeps) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => { if (!this.running) void this.scan(false); }, this.deps.pollMs);
    void this.scan(false);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass (after any pass in progress). `attemptEnded`: the last pass of the attempt. */
  async scan(attemptEnded: boolean): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.pass(attemptEnded).finally(() => { this.running = undefined; });
    return this.running;
  }

  private context(attemptEnded: boolean, step?: number): ReportContext {
    const w = this.watch;
    return { jobId: w.jobId, attempt: w.attempt, node: this.deps.node, dir: w.dir, retention: w.retention, source: 'discovery', attemptEnded, ...(step !== undefined && { step }) };
  }

  private async pass(attemptEnded: boolean): Promise<void> {
    const { state, log } = this.deps;
    const w = this.watch;
    // Skipped when nothing changed on disk since the last check and nothing is left to send
    // (a report that failed to publish is retried by the next full pass).
    const fingerprint = await treeFingerprint(w.dir).catch(() => undefined);
    if (!attemptEnded && fingerprint !== undefined && fingerprint === this.lastFingerprint) return;
    let found;
    try {
      this.checks++;
      found = await scanCheckpoints(w.dir, { format: formatOption(w.format) });
    } catch (err) {
      log.warn({ job: w.jobId, dir: w.dir, err: (err as Error).message }, 'checkpoint scan failed');
      return;
    }
    const reported = (state.state.reported[w.jobId] ??= {});
    const seen = new Set<string>();
    let complete = true;
    for (const f of found) {
      seen.add(f.path);
      if (state.deleting.has(f.path)) continue;
      const prev = reported[f.path];
      if ((await this.send(toReport(f, this.context(attemptEnded, prev?.step)), true)) === 'failed') complete = false;
    }
    // A missing directory (unmounted, not created yet) says nothing about what is in it.
    if (!existsSync(w.dir)) {
      if (complete) this.lastFingerprint = fingerprint;
      return;
    }
    for (const path of Object.keys(reported)) {
      if (seen.has(path) || !reported[path]?.seen || state.deleting.has(path) || !path.startsWith(`${w.dir.replace(/\/+$/, '')}/`)) continue;
      // Created since the scan above (training code may begin, create and commit a checkpoint
      // while this pass awaits its sends; the commit marks it seen): not gone.
      if (existsSync(path)) continue;
      const r = goneReport(path, this.context(attemptEnded, reported[path]?.step));
      const sent = await this.send(r, false);
      if (sent === 'sent') {
        delete reported[path];
        state.save();
      } else if (sent === 'failed') {
        complete = false;
      }
    }
    if (complete) this.lastFingerprint = fingerprint;
  }

  /** Publishes the report unless it says what was last published for its path. */
  async send(r: CheckpointReport, onDisk: boolean): Promise<SendResult> {
    return sendReport(r, this.deps, onDisk);
  }
}

export type SendResult = 'sent' | 'unchanged' | 'failed';

/** Shared by the watcher and the endpoint: publish when changed, then remember it. */
export async function sendReport(r: CheckpointReport, deps: Pick<WatcherDeps, 'state' | 'publish' | 'log'>, onDisk: boolean): Promise<SendResult> {
  const reported = (deps.state.state.reported[r.jobId] ??= {});
  const prev = reported[r.path];
  const digest = digestOf(r);
  if (prev?.digest === digest) {
    if (onDisk && !prev.seen) {
      prev.seen = true;
      deps.state.save();
    }
    return 'unchanged';
  }
  const seq = (prev?.seq ?? 0) + 1;
  try {
    await deps.publish(subjects.checkpointReport(r.node, r.jobId), encode(CheckpointReport, r), messageId(r, seq, digest));
  } catch (err) {
    // Not stored: the next pass sees the same difference and tries again.
    deps.log.debug({ job: r.jobId, path: r.path, err: (err as Error).message }, 'checkpoint report not sent; will retry');
    return 'failed';
  }
  // Forgotten while this report was on its way: deleted by retention (delete.ts), so it must
  // not come back, or the next pass would report it GONE.
  if (prev && reported[r.path] === undefined) return 'sent';
  reported[r.path] = { digest, seq, ...(prev?.step !== undefined && { step: prev.step }), ...((onDisk || prev?.seen) && { seen: true }) };
  deps.state.save();
  deps.log.info({ job: r.jobId, path: r.path, status: r.status, step: r.step, files: r.files.length, source: r.source, attemptEnded: r.attemptEnded || undefined }, 'checkpoint reported');
  return 'sent';
}

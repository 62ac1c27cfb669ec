// Starts, watches, stops and re-adopts rank processes. Each rank is its own process group
// (so a stop reaches everything it forked), writes its output to files under the state
// folder, and has its exit status recorded by the wrapper. Everything the runner knows is
// in the state file, so a restarted agent picks up exactly where the last one left off.
// A rank that fails leaves its error behind (torchelastic error file, stderr): the runner
// reads it once at the exit and keeps it in the record for the reporter.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import type { RankAssignment } from '@gantry/proto';
import { StateFile, rankKey, type RankRecord } from './state-file.js';
import { ORPHAN_MARKER_SUFFIX, WRAPPER_SCRIPT, interpretStatus, wrapperEnv } from './wrapper.js';
import { readRankError } from './rank-evidence.js';
import type { RankError } from './rank-error.js';

/** Variables a rank inherits from the agent's own environment; everything else comes from the job. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'SHELL', 'LD_LIBRARY_PATH'];
/** How long finished ranks are remembered, so a re-sent assignment never runs a rank twice. */
const FINISHED_RETENTION_MS = 6 * 3600_000;
const WRAPPER_ARGV0 = 'gantry-rank';

export type AssignResult = { ok: true; message: string } | { ok: false; message: string };

export interface RankRunnerOptions {
  /** The agent's beat file (beat.ts); without one, ranks run without a watchdog. */
  beatFile?: string;
  /** How long a rank's watchdog lets it run while the agent is silent. */
  partitionGraceMs?: number;
}

export class RankRunner {
  private readonly killTimers = new Map<string, NodeJS.Timeout>();
  private readonly children = new Set<string>();
  private pollTimer: NodeJS.Timeout | undefined;
  /** Called whenever a rank's state changes (started, exited) so the reporter can act. */
  onChange: () => void = () => undefined;

  constructor(private readonly state: StateFile, private readonly log: Logger, private readonly opts: RankRunnerOptions = {}) {}

  get records(): RankRecord[] {
    return Object.values(this.state.state.ranks);
  }

  /** Re-adopts ranks a previous agent process started; polls their liveness from now on. */
  start(): void {
    const bootId = currentBootId();
    const rebooted = bootId !== undefined && this.state.state.bootId !== undefined && this.state.state.bootId !== bootId;
    this.state.state.bootId = bootId;
    this.state.save();
    for (const rec of this.records) {
      if (rec.phase === 'running' && rebooted) {
        // Their pids may belong to other processes now: record the end, signal nothing.
        this.finishWith(rec, undefined, 'SIGKILL', 'the host rebooted while the rank ran');
        continue;
      }
      if (rec.phase === 'running') {
        if (this.alive(rec.pid)) this.log.info({ rank: rankKey(rec.jobId, rec.attempt, rec.rank), pid: rec.pid }, 're-adopted running rank');
        else this.finish(rec, undefined);
      }
    }
    this.pollTimer = setInterval(() => this.pollAdopted(), 500);
  }

  stopPolling(): void {
    clearInterval(this.pollTimer);
    for (const t of this.killTimers.values()) clearTimeout(t);
  }

  assign(a: RankAssignment): AssignResult {
    const key = rankKey(a.jobId, a.attempt, a.rank);
    const existing = this.state.state.ranks[key];
    if (existing) return { ok: true, message: existing.phase === 'running' ? 'already running' : 'already finished' };
    if (a.command.length === 0) return { ok: false, message: 'assignment has no command' };
    const dir = join(this.state.dir, 'ranks', `${a.jobId}-${a.attempt}-${a.rank}`);
    mkdirSync(dir, { recursive: true });
    const rec: RankRecord = {
      jobId: a.jobId, attempt: a.attempt, rank: a.rank, pid: 0, dir, phase: 'running', startedAt: new Date().toISOString(),
      startReported: false, exitReported: false, stopGraceSeconds: a.stopGraceSeconds,
      logs: { stdout: { offset: 0, seq: 0 }, stderr: { offset: 0, seq: 0 } },
    };
    if (a.workingDir && !(existsSync(a.workingDir) && statSync(a.workingDir).isDirectory())) {
      // Report a start and an immediate failure, as a shell would for a command it cannot run.
      this.state.state.ranks[key] = rec;
      this.finishWith(rec, 127, '', `working directory ${a.workingDir} does not exist`);
      return { ok: true, message: 'failed to start' };
    }
    const cwd = a.workingDir || dir;
    const env: NodeJS.ProcessEnv = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k];
    // The job may name its own error file (an empty value turns it off, as in torchelastic).
    env.TORCHELASTIC_ERROR_FILE = join(dir, 'error.json');
    Object.assign(env, a.env, wrapperEnv({
      exitFile: join(dir, 'exit'), beatFile: this.opts.beatFile, partitionGraceMs: this.opts.partitionGraceMs ?? 0, stopGraceSeconds: a.stopGraceSeconds,
    }));
    if (env.TORCHELASTIC_ERROR_FILE) rec.errorFile = resolve(cwd, env.TORCHELASTIC_ERROR_FILE);
    const out = openSync(join(dir, 'stdout.log'), 'a');
    const err = openSync(join(dir, 'stderr.log'), 'a');
    try {
      const child = spawn('/bin/sh', ['-c', WRAPPER_SCRIPT, WRAPPER_ARGV0, ...a.command], {
        cwd, env, detached: true, stdio: ['ignore', out, err],
      });
      rec.pid = child.pid ?? 0;
      this.children.add(key);
      child.on('exit', (code, signal) => {
        this.children.delete(key);
        this.finish(rec, code ?? (signal ? 128 + (signalNumber(signal) ?? 9) : undefined));
      });
      child.on('error', (e) => {
        this.log.warn({ rank: key, err: e.message }, 'rank process error');
        // No pid means the process never started (e.g. EACCES on the working directory): no
        // 'exit' will follow, so record the failure here, as a shell would (127).
        if (child.pid === undefined) {
          this.children.delete(key);
          this.finishWith(rec, 127, '', `could not start: ${e.message}`);
        }
      });
      child.unref();
    } finally {
      closeSync(out);
      closeSync(err);
    }
    this.state.state.ranks[key] = rec;
    this.state.save();
    this.log.info({ rank: key, pid: rec.pid, command: a.command[0] }, 'rank started');
    this.onChange();
    return { ok: true, message: 'started' };
  }

  /** SIGTERM to the rank's process group, SIGKILL after the grace period. */
  stop(jobId: string, attempt: number, rank: number, graceSeconds: number, reason: string): void {
    const key = rankKey(jobId, attempt, rank);
    const rec = this.state.state.ranks[key];
    if (!rec) {
      // Stopped before its assignment arrived: remember it as ended, so a late assignment is
      // refused and the scheduler hears that this rank will never run.
      const now = new Date().toISOString();
      this.state.state.ranks[key] = {
        jobId, attempt, rank, pid: 0, dir: join(this.state.dir, 'ranks', `${jobId}-${attempt}-${rank}`), phase: 'exited', startedAt: now, finishedAt: now,
        signal: 'SIGKILL', message: `stopped before it started: ${reason}`, startReported: false, exitReported: false,
        logs: { stdout: { offset: 0, seq: 0 }, stderr: { offset: 0, seq: 0 } },
      };
      this.state.save();
      this.onChange();
      return;
    }
    if (rec.phase !== 'running' || this.killTimers.has(key)) return;
    this.log.info({ rank: key, reason, graceSeconds }, 'stopping rank');
    rec.stopRequested = true;
    this.state.save();
    signalGroup(rec.pid, 'SIGTERM');
    this.killTimers.set(key, setTimeout(() => {
      this.killTimers.delete(key);
      if (rec.phase === 'running') signalGroup(rec.pid, 'SIGKILL');
    }, graceSeconds * 1000));
  }

  running(): RankRecord[] {
    return this.records.filter((r) => r.phase === 'running');
  }

  /** Drops finished, fully reported ranks older than the retention window. */
  gc(now = Date.now()): void {
    let changed = false;
    for (const [key, rec] of Object.entries(this.state.state.ranks)) {
      if (rec.phase === 'exited' && rec.exitReported && now - Date.parse(rec.finishedAt ?? rec.startedAt) > FINISHED_RETENTION_MS) {
        delete this.state.state.ranks[key];
        rmSync(rec.dir, { recursive: true, force: true });
        changed = true;
      }
    }
    if (changed) this.state.save();
  }

  private pollAdopted(): void {
    for (const rec of this.running()) {
      const key = rankKey(rec.jobId, rec.attempt, rec.rank);
      if (!this.children.has(key) && !this.alive(rec.pid)) this.finish(rec, undefined);
    }
  }

  /** Records how a rank ended: from the wrapper's exit file, else the status we saw, else killed. */
  private finish(rec: RankRecord, status: number | undefined): void {
    if (rec.phase === 'exited') return;
    let code = status;
    try {
      code = Number(readFileSync(join(rec.dir, 'exit'), 'utf8').trim());
    } catch {
      // No exit file: the wrapper itself was killed (SIGKILL after the grace period).
      if (status === undefined || status === 0) code = 128 + 9;
    }
    const { exitCode, signal } = interpretStatus(code ?? 137);
    const at = new Date();
    const error = exitCode === 0 ? undefined : readRankError({ dir: rec.dir, errorFile: rec.errorFile, startedAt: new Date(rec.startedAt), exitedAt: at });
    const orphaned = existsSync(join(rec.dir, `exit${ORPHAN_MARKER_SUFFIX}`));
    this.finishWith(rec, exitCode, signal, orphaned ? 'stopped by its wrapper: the agent was gone for longer than the partition grace period' : '', error, at);
    // Whatever the rank left behind in its process group goes with it.
    signalGroup(rec.pid, 'SIGKILL');
  }

  private finishWith(rec: RankRecord, exitCode: number | undefined, signal: string, message: string, error?: RankError, at = new Date()): void {
    const key = rankKey(rec.jobId, rec.attempt, rec.rank);
    clearTimeout(this.killTimers.get(key));
    this.killTimers.delete(key);
    rec.phase = 'exited';
    rec.exitCode = exitCode;
    rec.signal = signal;
    rec.finishedAt = at.toISOString();
    if (message) rec.message = message;
    if (error) {
      rec.error = error.message;
      rec.errorTime = (error.time ?? at).toISOString();
    }
    this.state.save();
    this.log.info({ rank: key, exitCode, signal, message: message || undefined, error: error?.message }, 'rank exited');
    this.onChange();
  }

  private alive(pid: number): boolean {
    if (pid <= 0) return false;
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    // Guard against pid reuse after a reboot or a long outage: the process must be our wrapper.
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(WRAPPER_ARGV0);
    } catch {
      return true;
    }
  }
}

function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function signalNumber(name: string): number | undefined {
  return (osConstants.signals as Record<string, number>)[name];
}

// Starts, watches, stops and re-adopts node ranks. A node rank is one process (per-node
// launcher, e.g. torchrun) or one process per GPU (per-GPU launcher). Each process is its own
// process group (so a stop reaches everything it forked) under its own wrapper, which records
// its exit status and runs the no-orphan watchdog, and writes its output to files under the
// state folder. Everything the runner knows is in the state file, so a restarted agent picks
// up exactly where the last one left off.
//
// The scheduler hears of a node rank, not of its processes: it has started when its processes
// were started, and it has exited once every one of them has (its GPUs are free only then).
// Its exit is the first failing process's (as the agent saw them end; for processes that
// ended while no agent watched, by the wrapper's exit time), else 0. As torchrun does with its workers, the first failure stops the
// node rank's other processes: they would otherwise wait for the failed one in a collective
// for as long as their timeouts allow. A failed process leaves its error behind (torchelastic
// error file, stderr): the runner reads it once, at the node rank's exit, and keeps it in the
// record for the reporter.
//
// Anything else done around a rank's life (checkpoint discovery, the per-job checkpoint token
// ...) is a hook (hooks.ts: prestart, poststart, stop, exited), not more code here.
import { spawn } from 'node:child_process';
import { existsSync, fstatSync, mkdirSync, openSync, closeSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import type { RankAssignment } from '@gantry/proto';
import { StateFile, newCursors, processesOf, rankKey, type ProcessRecord, type RankRecord } from './state-file.js';
import { DEFAULT_STOP_GRACE_SECONDS, ORPHAN_MARKER_SUFFIX, REASON_SUFFIX, WRAPPER_SCRIPT, interpretStatus, wrapperEnv } from './wrapper.js';
import { readRankError } from './rank-evidence.js';
import { oneLine } from './rank-error.js';
import { RankHooks, hookContext, type RankHook } from './hooks.js';
import type { GpuDeviceCgroups } from './gpu-devices.js';
import type { SpawnHelper } from './spawn-helper.js';
import { giveToUser, identityEnv, openForTraversal, unreachableProblem, type RankIdentity, type RankUsers } from './rank-user.js';

/** Variables a rank inherits from the agent's own environment; everything else comes from the job. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'SHELL', 'LD_LIBRARY_PATH'];
/** How long finished ranks are remembered, so a re-sent assignment never runs a rank twice. */
const FINISHED_RETENTION_MS = 6 * 3600_000;
const WRAPPER_ARGV0 = 'gantry-rank';
const ORPHANED = 'stopped by its wrapper: the agent was gone for longer than the partition grace period';

export type AssignResult = { ok: true; message: string } | { ok: false; message: string };

export interface RankRunnerOptions {
  /** The agent's beat file (beat.ts); without one, ranks run without a watchdog. */
  beatFile?: string;
  /** How long a rank's watchdog lets it run while the agent is silent. */
  partitionGraceMs?: number;
  /** Work around each rank's life (hooks.ts): checkpoint discovery, the per-job token ... */
  hooks?: RankHook[];
  /** The Unix user each rank runs as, by tenant or the job's allowed run_as_user (rank-user.ts); without it, the agent's own. */
  users?: RankUsers;
  /** Per-rank devices cgroups denying the GPUs not assigned (gpu-devices.ts); without it, CUDA_VISIBLE_DEVICES only. */
  devices?: GpuDeviceCgroups;
  /** The rank spawner (spawn-helper.ts); without it, the agent forks the ranks' wrappers itself. */
  spawner?: SpawnHelper;
}

const processKey = (rec: RankRecord, p: ProcessRecord) => `${rankKey(rec.jobId, rec.attempt, rec.rank)}#${p.local}`;

export class RankRunner {
  private readonly killTimers = new Map<string, NodeJS.Timeout>();
  /** Processes this agent spawned (their 'exit' event reports them); others are polled. */
  private readonly children = new Set<string>();
  /** Of those, the ones the spawner started (its 'X' lines report them). */
  private readonly spawned = new Set<string>();
  /** Ranks whose processes the spawner is starting: recorded once they all have pids. */
  private readonly starting = new Map<string, Promise<AssignResult>>();
  private spawner: SpawnHelper | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private notifyPending = false;
  /**
   * Called after a rank's state changed (started, exited) so the reporter can act: once per
   * turn of the event loop whatever changed in it, and only once the change is on disk.
   */
  onChange: () => void = () => undefined;
  readonly hooks: RankHooks;

  constructor(private readonly state: StateFile, private readonly log: Logger, private readonly opts: RankRunnerOptions = {}) {
    this.hooks = new RankHooks(opts.hooks ?? [], log);
    this.spawner = opts.spawner;
    if (this.spawner) {
      this.spawner.onGone = () => {
        // Its children live on, re-parented: watched from now on as adopted ranks are (polled).
        this.spawner = undefined;
        for (const k of this.spawned) this.children.delete(k);
        this.spawned.clear();
      };
    }
  }

  get records(): RankRecord[] {
    return Object.values(this.state.state.ranks);
  }

  /** Re-adopts ranks a previous agent process started; polls their liveness from now on. */
  start(): void {
    const bootId = currentBootId();
    const rebooted = bootId !== undefined && this.state.state.bootId !== undefined && this.state.state.bootId !== bootId;
    this.state.state.bootId = bootId;
    for (const rec of this.records) processesOf(rec);
    this.state.save();
    for (const rec of this.records) {
      if (rec.phase !== 'running') continue;
      if (rebooted) {
        // Their pids may belong to other processes now: record the end, signal nothing.
        for (const p of processesOf(rec)) if (p.phase === 'running') Object.assign(p, { phase: 'exited', status: 128 + 9, finishedAt: new Date().toISOString() });
        this.finishWith(rec, undefined, 'SIGKILL', 'the host rebooted while the rank ran');
        continue;
      }
      const live = processesOf(rec).filter((p) => p.phase === 'running' && this.alive(p.pid));
      if (live.length > 0) this.log.info({ rank: rankKey(rec.jobId, rec.attempt, rec.rank), pids: live.map((p) => p.pid) }, 're-adopted running rank');
      this.hooks.poststart(hookContext(rec, { restored: true }));
      this.pollRank(rec);
    }
    this.pollTimer = setInterval(() => this.pollAdopted(), 500);
  }

  stopPolling(): void {
    clearInterval(this.pollTimer);
    for (const t of this.killTimers.values()) clearTimeout(t);
    this.state.flush();
  }

  /** onChange at the end of this turn, after the state write (see onChange). */
  private notifySoon(): void {
    if (this.notifyPending) return;
    this.notifyPending = true;
    setImmediate(() => {
      this.notifyPending = false;
      try {
        this.state.settle();
      } catch (err) {
        // Not on disk: nothing is reported from it (a later write and change report it).
        this.log.error({ err: (err as Error).message }, 'cannot write the agent state; rank changes not reported yet');
        return;
      }
      this.onChange();
    });
  }

  /** Starts a rank; through the spawner the answer comes once its processes have pids. */
  assign(a: RankAssignment): AssignResult | Promise<AssignResult> {
    const key = rankKey(a.jobId, a.attempt, a.rank);
    const inFlight = this.starting.get(key);
    if (inFlight) return inFlight.then(() => ({ ok: true, message: 'already running' }));
    const existing = this.state.state.ranks[key];
    if (existing) return { ok: true, message: existing.phase === 'running' ? 'already running' : 'already finished' };
    if (a.command.length === 0) return { ok: false, message: 'assignment has no command' };
    const dir = join(this.state.dir, 'ranks', `${a.jobId}-${a.attempt}-${a.rank}`);
    mkdirSync(dir, { recursive: true });
    const perGpu = a.processes.length > 0;
    const rec: RankRecord = {
      jobId: a.jobId, attempt: a.attempt, rank: a.rank, pid: 0, dir, phase: 'running', startedAt: new Date().toISOString(),
      startReported: false, exitReported: false, stopGraceSeconds: a.stopGraceSeconds, processes: [], ...(perGpu && { perGpu }),
    };
    if (a.workingDir && !(existsSync(a.workingDir) && statSync(a.workingDir).isDirectory())) {
      // Report a start and an immediate failure, as a shell would for a command it cannot run;
      // the reason is the rank's error, so the job's failure says it.
      this.state.state.ranks[key] = rec;
      const why = `working directory ${a.workingDir} does not exist on ${a.env.GANTRY_NODE_NAME || 'this node'}`;
      this.finishWith(rec, 127, '', why, { message: why });
      this.state.save();
      return { ok: true, message: 'failed to start' };
    }
    const cwd = a.workingDir || dir;
    let id: RankIdentity | undefined;
    let deviceCgroup: string | undefined;
    try {
      // Without a policy there is nothing that could allow a job's own user: refuse rather than ignore it.
      if (a.runAsUser && !this.opts.users) throw new Error(`run_as_user ${JSON.stringify(a.runAsUser.slice(0, 40))} is not allowed: this agent has no rank user policy`);
      id = this.opts.users?.identityFor(a.env.GANTRY_TENANT ?? '', a.runAsUser);
      if (id) {
        // The rank's folder is its default working folder and takes its exit and error files.
        openForTraversal(id, dirname(dir));
        giveToUser(id, [dir]);
        const problem = unreachableProblem(id, cwd);
        if (problem) throw new Error(problem);
      }
      deviceCgroup = this.opts.devices?.create(basename(dir), a.gpuIndices);
    } catch (err) {
      this.state.state.ranks[key] = rec;
      const why = `not started: ${(err as Error).message}`;
      this.finishWith(rec, 126, '', why, { message: why });
      this.state.save();
      return { ok: true, message: 'failed to start' };
    }
    let added: Record<string, string>;
    try {
      added = this.hooks.prestart(hookContext(rec, { env: a.env }));
    } catch (err) {
      this.state.state.ranks[key] = rec;
      const why = `not started: ${(err as Error).message}`;
      this.finishWith(rec, 127, '', why, { message: why });
      this.state.save();
      return { ok: true, message: 'failed to start' };
    }
    const base: NodeJS.ProcessEnv = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) base[k] = process.env[k];
    if (id) Object.assign(base, identityEnv(id));
    const locals = perGpu ? a.processes.map((p) => ({ local: p.localRank, env: p.env, dir: join(dir, `local-${p.localRank}`) })) : [{ local: 0, env: {}, dir }];
    const launches: Promise<void>[] = [];
    const failed: { p: ProcessRecord; why: string }[] = [];
    for (const l of locals) {
      // Per node the process's folder is the rank's, made above.
      if (l.dir !== dir) {
        mkdirSync(l.dir, { recursive: true });
        if (id) giveToUser(id, [l.dir]);
      }
      // The job may name its own error file (an empty value turns it off, as in torchelastic).
      const env: NodeJS.ProcessEnv = { ...base, TORCHELASTIC_ERROR_FILE: join(l.dir, 'error.json') };
      Object.assign(env, a.env, added, l.env, wrapperEnv({
        exitFile: join(l.dir, 'exit'), beatFile: this.opts.beatFile, partitionGraceMs: this.opts.partitionGraceMs ?? 0, stopGraceSeconds: a.stopGraceSeconds, deviceCgroup,
      }));
      const p: ProcessRecord = { local: l.local, pid: 0, dir: l.dir, phase: 'running', logs: newCursors() };
      if (env.TORCHELASTIC_ERROR_FILE) p.errorFile = resolve(cwd, env.TORCHELASTIC_ERROR_FILE);
      rec.processes!.push(p);
      const launch = this.spawnProcess(key, rec, p, a.command, cwd, env, id, deviceCgroup);
      if (launch) launches.push(launch.then((why) => { if (why !== undefined) failed.push({ p, why }); }));
    }
    const started = (): AssignResult => {
      rec.pid = rec.processes![0]?.pid ?? 0;
      if (!perGpu && rec.processes![0]?.errorFile) rec.errorFile = rec.processes![0].errorFile;
      this.state.state.ranks[key] = rec;
      // On disk before the scheduler hears 'started' (the reply): a restarted agent re-adopts it.
      this.state.save();
      this.log.info({ rank: key, pids: rec.processes!.map((p) => p.pid), command: a.command[0], ...(id && { uid: id.uid, gid: id.gid }) }, 'rank started');
      this.hooks.poststart(hookContext(rec, { env: a.env }));
      for (const f of failed) this.finishProcess(rec, f.p, 127, `could not start: ${f.why}`);
      this.notifySoon();
      return { ok: true, message: 'started' };
    };
    if (launches.length === 0) return started();
    // Through the spawner: the rank is recorded (and answered) once every process has a pid;
    // until then a repeated assignment or a stop waits for it.
    const recorded = Promise.all(launches).then(started).finally(() => this.starting.delete(key));
    this.starting.set(key, recorded);
    return recorded;
  }

  /**
   * Starts one process of a rank: through the spawner when there is one (resolving, once it has
   * a pid, to nothing, or to why it could not start), else forked here (undefined; a failure to
   * start comes as the child's 'error').
   */
  private spawnProcess(key: string, rec: RankRecord, p: ProcessRecord, command: string[], cwd: string, env: NodeJS.ProcessEnv, id?: RankIdentity, deviceCgroup?: string): Promise<string | undefined> | undefined {
    const pkey = processKey(rec, p);
    // The privilege drop: the wrapper (and so the command and its watchdog) runs as the rank's user.
    const user = id?.drop ? { uid: id.uid, gid: id.gid } : {};
    const argv = ['-c', WRAPPER_SCRIPT, WRAPPER_ARGV0, ...command];
    const joinCgroup = (pid: number) => {
      if (!deviceCgroup) return;
      // The wrapper waits for this before it starts the command (and fails the rank without it).
      try { this.opts.devices!.join(deviceCgroup, pid); } catch (e) { this.log.error({ rank: pkey, cgroup: deviceCgroup, err: (e as Error).message }, 'could not move the rank into its device cgroup'); }
    };
    const spawner = this.spawner;
    if (spawner) {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        const end = () => {
          this.children.delete(pkey);
          this.spawned.delete(pkey);
          this.finishProcess(rec, p, code ?? (signal ? 128 + (signalNumber(signal) ?? 9) : undefined));
        };
        // An exit can come before the rank is recorded (a command that ends at once): after it.
        const starting = this.starting.get(key);
        if (starting) void starting.then(end, end);
        else end();
      };
      return spawner.spawn({ file: '/bin/sh', argv: ['/bin/sh', ...argv], cwd, env, stdout: join(p.dir, 'stdout.log'), stderr: join(p.dir, 'stderr.log'), ...user }, onExit).then((outcome) => {
        if ('error' in outcome) return outcome.error;
        p.pid = outcome.pid;
        this.children.add(pkey);
        this.spawned.add(pkey);
        joinCgroup(outcome.pid);
        return undefined;
      });
    }
    const out = openSync(join(p.dir, 'stdout.log'), 'a');
    const err = openSync(join(p.dir, 'stderr.log'), 'a');
    try {
      const child = spawn('/bin/sh', argv, { cwd, env, detached: true, stdio: ['ignore', out, err], ...user });
      p.pid = child.pid ?? 0;
      this.children.add(pkey);
      if (child.pid !== undefined) joinCgroup(child.pid);
      child.on('exit', (code, signal) => {
        this.children.delete(pkey);
        this.finishProcess(rec, p, code ?? (signal ? 128 + (signalNumber(signal) ?? 9) : undefined));
      });
      child.on('error', (e) => {
        this.log.warn({ rank: pkey, err: e.message }, 'rank process error');
        // No pid means the process never started (e.g. EACCES on the working directory): no
        // 'exit' will follow, so record the failure here, as a shell would (127).
        if (child.pid === undefined) {
          this.children.delete(pkey);
          this.finishProcess(rec, p, 127, `could not start: ${e.message}`);
        }
      });
      child.unref();
    } finally {
      closeSync(out);
      closeSync(err);
    }
    return undefined;
  }

  /** SIGTERM to every process group of the rank, SIGKILL after the grace period. */
  stop(jobId: string, attempt: number, rank: number, graceSeconds: number, reason: string): void {
    const key = rankKey(jobId, attempt, rank);
    const starting = this.starting.get(key);
    if (starting) {
      void starting.then(() => this.stop(jobId, attempt, rank, graceSeconds, reason));
      return;
    }
    const rec = this.state.state.ranks[key];
    if (!rec) {
      // Stopped before its assignment arrived: remember it as ended, so a late assignment is
      // refused and the scheduler hears that this rank will never run.
      const now = new Date().toISOString();
      this.state.state.ranks[key] = {
        jobId, attempt, rank, pid: 0, dir: join(this.state.dir, 'ranks', `${jobId}-${attempt}-${rank}`), phase: 'exited', startedAt: now, finishedAt: now,
        signal: 'SIGKILL', message: `stopped before it started: ${reason}`, startReported: false, exitReported: false, processes: [],
      };
      this.state.save();
      this.notifySoon();
      return;
    }
    // A stop re-sent after an agent restart arms the SIGKILL again (the timer died with the agent).
    if (rec.phase !== 'running' || this.killTimers.has(key)) return;
    this.log.info({ rank: key, reason, graceSeconds }, 'stopping rank');
    rec.stopRequested = true;
    this.state.save();
    this.hooks.stop(hookContext(rec), reason);
    this.terminate(rec, graceSeconds);
  }

  /** SIGTERM now, SIGKILL after the grace, to each process of the rank still running. */
  private terminate(rec: RankRecord, graceSeconds: number): void {
    const key = rankKey(rec.jobId, rec.attempt, rec.rank);
    if (this.killTimers.has(key)) return;
    for (const p of processesOf(rec)) if (p.phase === 'running') signalGroup(p.pid, 'SIGTERM');
    this.killTimers.set(key, setTimeout(() => {
      this.killTimers.delete(key);
      for (const p of processesOf(rec)) if (p.phase === 'running') signalGroup(p.pid, 'SIGKILL');
    }, graceSeconds * 1000));
  }

  running(): RankRecord[] {
    return this.state.unsettled().filter((r) => r.phase === 'running');
  }

  /** Drops finished, fully reported ranks older than the retention window. */
  gc(now = Date.now()): void {
    for (const [key, rec] of Object.entries(this.state.state.ranks)) {
      if (rec.phase === 'exited' && rec.exitReported && now - Date.parse(rec.finishedAt ?? rec.startedAt) > FINISHED_RETENTION_MS) {
        this.state.forget(key);
        this.opts.devices?.remove(basename(rec.dir)); // in case a process outlived the rank's exit
        rmSync(rec.dir, { recursive: true, force: true });
      }
    }
  }

  private pollAdopted(): void {
    for (const rec of this.running()) this.pollRank(rec);
  }

  /** Records the end of each process of the rank this agent did not spawn and that is gone. */
  private pollRank(rec: RankRecord): void {
    // Several may have ended unseen (the agent was away): record them in the order they ended.
    const gone = processesOf(rec).filter((p) => p.phase === 'running' && !this.children.has(processKey(rec, p)) && !this.alive(p.pid));
    const ended = (p: ProcessRecord) => exitTime(join(p.dir, 'exit')) ?? Infinity;
    for (const p of gone.sort((a, b) => ended(a) - ended(b) || a.local - b.local)) this.finishProcess(rec, p, undefined);
    // A rank whose processes all ended while no agent watched (or that never had any).
    if (rec.phase === 'running' && processesOf(rec).every((p) => p.phase === 'exited')) this.finishRank(rec);
  }

  /** Records how one process ended: from its wrapper's exit file, else the status we saw, else killed. */
  private finishProcess(rec: RankRecord, p: ProcessRecord, status: number | undefined, message = ''): void {
    if (p.phase === 'exited') return;
    const exitFile = join(p.dir, 'exit');
    let code = status;
    let at = new Date();
    const recorded = readExitFile(exitFile);
    if (recorded) {
      code = recorded.status;
      at = new Date(recorded.mtimeMs);
    } else if (status === undefined || status === 0) {
      // No status recorded: the wrapper itself was killed (SIGKILL after the grace period).
      code = 128 + 9;
    }
    p.phase = 'exited';
    p.status = code ?? 128 + 9;
    p.finishedAt = at.toISOString();
    // Only a wrapper that could not start the command leaves a reason, and it then fails (126, 127).
    const reason = p.status !== 0 ? readReason(exitFile) : '';
    if (existsSync(`${exitFile}${ORPHAN_MARKER_SUFFIX}`)) p.message = ORPHANED;
    else if (reason || message) p.message = reason || message;
    // Whatever the process left behind in its process group goes with it.
    signalGroup(p.pid, 'SIGKILL');
    // The first failure as it was seen: the stops it causes end the others within the file
    // system's timestamp granularity, so exit times alone could not tell them apart.
    if (p.status !== 0 && rec.firstFailed === undefined) rec.firstFailed = p.local;
    const rest = processesOf(rec).filter((q) => q.phase === 'running');
    if (p.status !== 0 && rest.length > 0 && !rec.stopRequested) {
      this.log.info({ rank: rankKey(rec.jobId, rec.attempt, rec.rank), local: p.local, status: p.status }, 'a process of the rank failed; stopping the others');
      this.terminate(rec, rec.stopGraceSeconds ?? DEFAULT_STOP_GRACE_SECONDS);
    }
    // Written at the end of the turn: until then the exit file (the wrapper's) holds the same.
    this.state.saveSoon();
    if (rest.length === 0) this.finishRank(rec);
  }

  /** Every process has exited: the rank's exit is the first failing process's, else 0. */
  private finishRank(rec: RankRecord): void {
    const procs = processesOf(rec);
    const time = (p: ProcessRecord) => Date.parse(p.finishedAt ?? rec.startedAt);
    if (procs.length === 0) {
      this.finishWith(rec, undefined, 'SIGKILL', 'no process of the rank was found');
      return;
    }
    const first = procs.find((p) => p.local === rec.firstFailed) ?? procs.filter((p) => p.status !== 0).sort((a, b) => time(a) - time(b) || a.local - b.local)[0];
    // The rank ended with its last process.
    const at = new Date(Math.max(...procs.map(time)));
    if (!first) {
      this.finishWith(rec, 0, '', '', undefined, at);
      return;
    }
    const { exitCode, signal } = interpretStatus(first.status ?? 128 + 9);
    const found = readRankError({ dir: first.dir, errorFile: first.errorFile, startedAt: new Date(rec.startedAt), exitedAt: new Date(time(first)) });
    // A process that could not start says why; per GPU, which process it was.
    const said = found?.message ?? (first.message && first.message !== ORPHANED ? oneLine(first.message) : '');
    const error = rec.perGpu ? { message: oneLine(`local-rank ${first.local}${said ? `: ${said}` : ' failed first'}`), time: found?.time ?? new Date(time(first)) } : said ? { message: said, time: found?.time ?? new Date(time(first)) } : undefined;
    const orphaned = procs.some((p) => p.message === ORPHANED);
    this.finishWith(rec, exitCode, signal, orphaned ? ORPHANED : first.message ?? '', error, at);
  }

  private finishWith(rec: RankRecord, exitCode: number | undefined, signal: string, message: string, error?: { message: string; time?: Date }, at = new Date()): void {
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
    // Written at the end of the turn, before onChange reports it. A crash before then loses
    // nothing: the restarted agent finds the wrapper gone and reads its exit file again.
    this.state.saveSoon();
    this.opts.devices?.remove(basename(rec.dir));
    this.log.info({ rank: key, exitCode, signal, message: message || undefined, error: error?.message }, 'rank exited');
    this.hooks.exited(hookContext(rec));
    this.notifySoon();
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

/** When the wrapper recorded the exit (ms), if it did. */
function exitTime(exitFile: string): number | undefined {
  try {
    return statSync(exitFile).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * The status the wrapper wrote and when (ms); undefined without one (no file, or an empty one:
 * see wrapper.ts). One open for both, this is on every process's exit.
 */
function readExitFile(exitFile: string): { status: number; mtimeMs: number } | undefined {
  let fd: number;
  try {
    fd = openSync(exitFile, 'r');
  } catch {
    return undefined;
  }
  try {
    const { mtimeMs } = fstatSync(fd);
    const buf = Buffer.alloc(16);
    const text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('latin1').trim();
    return /^\d{1,3}$/.test(text) ? { status: Number(text), mtimeMs } : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The wrapper's one-line reason for not starting the command (wrapper.ts), if it left one. */
function readReason(exitFile: string): string {
  try {
    return readFileSync(`${exitFile}${REASON_SUFFIX}`, 'utf8').trim().split('\n')[0] ?? '';
  } catch {
    return '';
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

// The node agent: registers with the scheduler, heartbeats, runs the ranks it is assigned
// and reports on them. It only dials out (NATS); GPU hosts need no inbound port.
import { randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import {
  AgentCommandReply, AgentRank, CheckpointDeleteReply, CheckpointDeleteRequest, CheckpointReport, NodeHeartbeat, RankPhase, RegisterNodeRequest, RegisterNodeResponse, Topology, type GpuDevice,
} from '@gantry/proto';
import { CommandRefused, MAX_EPOCH_JUMP, SUBJECT_TOKEN, commandVerifyKeys, decode, encode, subjects, verifyCommand } from '@gantry/bus';
import { GANTRY_VERSION } from '@gantry/service-kit/version';
import type { AgentConfig } from './config.js';
import { StateFile } from './runner/state-file.js';
import { RankRunner } from './runner/rank-runner.js';
import type { SpawnHelper } from './runner/spawn-helper.js';
import { RankUsers } from './runner/rank-user.js';
import { GpuDeviceCgroups } from './runner/gpu-devices.js';
import { AgentBeat, beatFilePath } from './runner/beat.js';
import { RankReporter } from './reporting/rank-reporter.js';
import { CheckpointHook } from './checkpoints/hook.js';

export const AGENT_VERSION = GANTRY_VERSION;

export class NodeAgent {
  readonly instanceId = randomUUID();
  /**
   * When this process started (the host's clock), before it stamps any report: the scheduler
   * still believes the previous process's reports stamped before it, and no later ones.
   */
  readonly startedAt = new Date();
  private readonly state: StateFile;
  private readonly runner: RankRunner;
  private readonly beat: AgentBeat;
  private reporter: RankReporter | undefined;
  private timers: NodeJS.Timeout[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private sub: Subscription | undefined;
  private deleteSub: Subscription | undefined;
  private verifySub: Subscription | undefined;
  /** Checkpoint discovery, the per-job endpoint and retention's deletions (a rank hook). */
  readonly checkpoints: CheckpointHook;
  private heartbeatMs: number;
  private seq = 0;
  private registered = false;
  private stopped = false;
  /** When the connection to NATS was lost; 0 while connected. */
  private disconnectedAt = 0;
  /** Registrations run one after another, so the last one sent carries the latest GPU list. */
  private registration: Promise<void> = Promise.resolve();
  /** Replies to this turn's commands, sent once the state they depend on is written. */
  private replies: (() => void)[] = [];
  /** The scheduler's public keys: a command must be signed by one of them. */
  private readonly commandKeys: KeyObject[];
  private readonly refusedCommands: Counter<'reason'>;

  constructor(
    private readonly cfg: AgentConfig,
    private readonly nc: NatsConnection,
    private gpus: GpuDevice[],
    private readonly backend: string,
    private readonly log: Logger,
    /** Called after NATS comes back, so other reporters resend what they buffered. */
    private readonly onReconnect: () => void = () => undefined,
    metrics?: Registry,
    /** Forks the ranks' wrappers (runner/spawn-helper.ts); without it, the agent does. */
    private readonly spawner?: SpawnHelper,
  ) {
    this.commandKeys = commandVerifyKeys(readFileSync(cfg.schedulerPublicKeyFile, 'utf8'));
    this.refusedCommands = new Counter({
      name: 'gantry_agent_commands_refused_total',
      help: 'Commands refused before running: malformed, unsigned, signed for another node, bad signature, stale or implausible epoch',
      labelNames: ['reason'], registers: metrics ? [metrics] : [],
    });
    this.state = new StateFile(cfg.stateDir);
    this.state.onWriteError = (err) => this.log.error({ err: err.message }, 'cannot write the agent state; changes kept pending');
    this.beat = new AgentBeat(beatFilePath(cfg.stateDir), log);
    const js = jetstream(nc);
    this.checkpoints = new CheckpointHook({
      node: cfg.node, stateDir: cfg.stateDir, log,
      publish: async (subject, data, msgID) => { await js.publish(subject, data, { msgID }); },
      // How often node rank 0's host scans a job's checkpoint directory (docs/checkpoints.md).
      pollMs: Number(process.env.CHECKPOINT_POLL_MS) || undefined,
      checkpointAddr: cfg.checkpointAddr,
      internalTls: cfg.internalTls,
      admitShim: cfg.admitShim,
    });
    const isolation = cfg.ranks.gpuIsolation === 'off' ? { reason: 'ranks.gpuIsolation is off: GPU isolation is CUDA_VISIBLE_DEVICES only' } : GpuDeviceCgroups.detect();
    log.info({ gpuIsolation: isolation.isolation ? 'cgroup-v1' : 'off' }, isolation.reason);
    this.runner = new RankRunner(this.state, log, { beatFile: this.beat.path, partitionGraceMs: cfg.partitionGraceMs, hooks: [this.checkpoints], users: new RankUsers(cfg.ranks), ...(isolation.isolation && { devices: isolation.isolation }), spawner });
    if (process.getuid?.() === 0 && !cfg.ranks.user && cfg.ranks.allowRoot) log.warn('ranks.allowRoot with no rank user: tenants without a user in ranks.tenants run their ranks as root. Local development only; see docs/security.md.');
    this.heartbeatMs = cfg.heartbeatIntervalMs;
  }

  async start(): Promise<void> {
    // First, before anything that can wait: the watchdogs of re-adopted ranks count the
    // silence since the last agent's final beat.
    this.beat.start();
    this.reporter = new RankReporter(this.cfg.node, jetstream(this.nc), this.state, this.log, this.cfg.rankLogMaxBytes, this.instanceId);
    this.runner.onChange = () => void this.flushRankReports();
    await this.checkpoints.start();
    this.runner.start();
    this.deleteSub = this.nc.subscribe(subjects.checkpointDelete(this.cfg.node), { callback: (err, msg) => {
      if (err) return;
      let req: CheckpointDeleteRequest;
      try {
        req = decode(CheckpointDeleteRequest, msg.data, 'CheckpointDeleteRequest');
      } catch (e) {
        msg.respond(encode(CheckpointDeleteReply, { ok: false, deleted: false, message: (e as Error).message }));
        return;
      }
      void this.checkpoints.deleteCheckpoint(req).then((reply) => msg.respond(encode(CheckpointDeleteReply, reply)));
    } });
    this.verifySub = this.nc.subscribe(subjects.checkpointVerify(this.cfg.node), { callback: (err, msg) => {
      if (err) return;
      let req: CheckpointReport;
      try {
        req = decode(CheckpointReport, msg.data, 'CheckpointReport');
      } catch {
        return;
      }
      void this.checkpoints.verify(req).then((reply) => msg.respond(encode(CheckpointReport, reply)), () => undefined);
    } });
    this.sub = this.nc.subscribe(subjects.agentCommand(this.cfg.node), { callback: (err, msg) => {
      if (err) return;
      // A reply says what the command did (a rank started, an epoch accepted), so it goes out
      // only once that is on disk; the commands that arrive in one turn share one state write.
      const reply = this.state.deferring(() => this.command(msg.data));
      // A rank started through the spawner is answered once its processes have pids.
      // Unanswered when recording it failed (the state write): the scheduler sends it again.
      if (reply instanceof Promise) reply.then((r) => this.queueReply(msg, r), (err: unknown) => this.log.error({ err: (err as Error).message }, 'command not answered: the rank could not be recorded'));
      else this.queueReply(msg, reply);
    } });
    void this.watchConnection();
    await this.reRegister();
    this.timers.push(setInterval(() => void this.flushRankReports(), 250));
    this.timers.push(setInterval(() => this.runner.gc(), 60_000));
    this.timers.push(setInterval(() => this.enforcePartitionGrace(), 1_000));
    this.scheduleHeartbeat();
  }

  /** Whether a scheduler has accepted this process's registration (it believes its reports from then on). */
  get isRegistered(): boolean {
    return this.registered;
  }

  /**
   * Rank events carry this process's instance id, which the scheduler believes only once it
   * has recorded the registration: sent before, they would be dropped (and, de-duplicated by
   * their message id, never delivered again).
   */
  private flushRankReports(): Promise<void> {
    return this.registered ? this.reporter?.flush() ?? Promise.resolve() : Promise.resolve();
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeat();
      if (!this.stopped) this.scheduleHeartbeat();
    }, this.heartbeatMs);
  }

  private ranks(): AgentRank[] {
    return this.runner.running().map((r) => AgentRank.create({ jobId: r.jobId, attempt: r.attempt, rank: r.rank, pid: r.pid, phase: RankPhase.RANK_PHASE_STARTED }));
  }

  /**
   * The GPU inventory changed (a GPU fell off the bus): register again with the new list, so
   * the scheduler stops placing work on the missing GPU and recovers the jobs that held it.
   */
  setGpus(gpus: GpuDevice[]): Promise<void> {
    this.gpus = gpus;
    return this.reRegister();
  }

  /** Registers after any registration in flight (see `registration`). */
  reRegister(): Promise<void> {
    this.registration = this.registration.then(() => this.register());
    return this.registration;
  }

  /** Registers, retrying until a scheduler leader accepts (there may be none for a while). */
  private async register(): Promise<void> {
    const req = RegisterNodeRequest.create({
      node: this.cfg.node, address: this.cfg.address, topology: Topology.create(this.cfg.topology), labels: this.cfg.labels,
      agentVersion: AGENT_VERSION, deviceBackend: this.backend, instanceId: this.instanceId, highestEpoch: this.state.state.highestEpoch,
      instanceStartedAt: this.startedAt,
    });
    for (let delay = 250; !this.stopped; delay = Math.min(delay * 2, 5_000)) {
      try {
        req.ranks = this.ranks();
        req.gpus = this.gpus;
        const reply = await this.nc.request(subjects.agentRegister(this.cfg.node), encode(RegisterNodeRequest, req), { timeout: 5_000 });
        const res = decode(RegisterNodeResponse, reply.data, 'RegisterNodeResponse');
        if (res.accepted) {
          if (res.heartbeatIntervalMs > 0) this.heartbeatMs = res.heartbeatIntervalMs;
          this.registered = true;
          this.log.info({ node: this.cfg.node, heartbeatMs: this.heartbeatMs, message: res.message }, 'registered');
          return;
        }
        this.log.warn({ message: res.message }, 'registration refused; retrying');
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'registration not answered; retrying');
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private heartbeat(): void {
    if (!this.registered || this.nc.isClosed()) return;
    const hb = NodeHeartbeat.create({ node: this.cfg.node, seq: ++this.seq, time: new Date(), ranks: this.ranks(), instanceId: this.instanceId, highestEpoch: this.state.state.highestEpoch });
    try {
      this.nc.publish(subjects.agentHeartbeat(this.cfg.node), encode(NodeHeartbeat, hb));
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'heartbeat not sent');
    }
  }

  /**
   * Commands must be signed by the scheduler (libs/bus/src/command-signing.ts) for this node;
   * anything else is refused before it is even decoded as a command. They carry the leader's
   * epoch: one from an older leader (a paused, deposed one) is refused. The highest accepted
   * is reported in every heartbeat, so a leader whose counter went back (a restore) raises its
   * own above it instead of being refused for ever.
   */
  command(data: Uint8Array): AgentCommandReply | Promise<AgentCommandReply> {
    let cmd;
    try {
      cmd = verifyCommand(this.commandKeys, this.cfg.node, data);
    } catch (err) {
      const reason = err instanceof CommandRefused ? err.reason : 'malformed';
      this.refusedCommands.inc({ reason });
      this.log.warn({ reason, bytes: data.length, err: (err as Error).message }, 'refused a command');
      return { ok: false, message: (err as Error).message };
    }
    // Job ids are subject tokens wherever the scheduler makes them; anything else would end up
    // in state records, subjects and message ids (found by pnpm fuzz: a newline broke reports).
    const target = cmd.command?.$case === 'assign' ? cmd.command.assign : cmd.command?.$case === 'stop' ? cmd.command.stop : undefined;
    if (target && !SUBJECT_TOKEN.test(target.jobId)) {
      this.refusedCommands.inc({ reason: 'malformed' });
      this.log.warn({ reason: 'malformed', job: target.jobId.slice(0, 64) }, 'refused a command');
      return { ok: false, message: `job id ${JSON.stringify(target.jobId.slice(0, 64))} is not valid` };
    }
    if (cmd.epoch < this.state.state.highestEpoch) {
      this.refusedCommands.inc({ reason: 'stale-epoch' });
      this.log.warn({ epoch: cmd.epoch, highest: this.state.state.highestEpoch }, 'ignoring command from a stale scheduler');
      return { ok: false, message: `stale epoch ${cmd.epoch} < ${this.state.state.highestEpoch}` };
    }
    // A leader is elected once per lease takeover: an epoch far beyond the last one is forged
    // or corrupt, and accepting it would make this agent refuse the real scheduler.
    if (cmd.epoch > this.state.state.highestEpoch + MAX_EPOCH_JUMP) {
      this.refusedCommands.inc({ reason: 'implausible-epoch' });
      this.log.warn({ epoch: cmd.epoch, highest: this.state.state.highestEpoch }, 'ignoring a command with an implausible epoch');
      return { ok: false, message: `implausible epoch ${cmd.epoch} (last accepted ${this.state.state.highestEpoch})` };
    }
    if (cmd.epoch > this.state.state.highestEpoch) {
      this.state.state.highestEpoch = cmd.epoch;
      this.state.save();
    }
    const c = cmd.command;
    if (c?.$case === 'assign') return this.runner.assign(c.assign);
    if (c?.$case === 'stop') {
      this.runner.stop(c.stop.jobId, c.stop.attempt, c.stop.rank, c.stop.graceSeconds, c.stop.reason);
      return { ok: true, message: 'stopping' };
    }
    return { ok: false, message: 'empty command' };
  }

  private queueReply(msg: Msg, reply: AgentCommandReply): void {
    this.replies.push(() => msg.respond(encode(AgentCommandReply, reply)));
    if (this.replies.length === 1) setImmediate(() => this.sendReplies());
  }

  private sendReplies(): void {
    const replies = this.replies;
    this.replies = [];
    try {
      this.state.settle();
    } catch (err) {
      // Not on disk: no reply, as if the agent had died here (the scheduler resends the command).
      this.log.error({ err: (err as Error).message, commands: replies.length }, 'cannot write the agent state; commands not answered');
      return;
    }
    for (const send of replies) {
      try {
        send();
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'command reply not sent');
      }
    }
  }

  /** After a reconnect the scheduler may have restarted or failed over: register again. */
  private async watchConnection(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect' && this.disconnectedAt === 0) {
        this.disconnectedAt = Date.now();
        this.log.warn({ graceMs: this.cfg.partitionGraceMs }, 'lost NATS; ranks keep running for the partition grace period');
      } else if (s.type === 'reconnect') {
        this.disconnectedAt = 0;
        this.log.info('reconnected to NATS; re-registering');
        // Registration reports the ranks still running; the scheduler stops those it no
        // longer wants (attempt numbers fence old ones), and exits are reported once.
        void this.reRegister().then(() => { void this.flushRankReports(); this.onReconnect(); });
      }
    }
  }

  /**
   * Cut off from the control plane for longer than the grace period, the agent stops its
   * ranks: the scheduler has long declared this node lost and may have restarted the job
   * elsewhere, and two copies of a rank must not write the same checkpoint.
   */
  private enforcePartitionGrace(): void {
    if (this.disconnectedAt === 0 || Date.now() - this.disconnectedAt < this.cfg.partitionGraceMs) return;
    const reason = `control plane unreachable for ${Math.round((Date.now() - this.disconnectedAt) / 1000)}s`;
    for (const r of this.runner.running()) this.runner.stop(r.jobId, r.attempt, r.rank, r.stopGraceSeconds ?? 10, reason);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Ranks keep running for the partition grace period, for a restarted agent to re-adopt.
    this.beat.stop();
    for (const t of this.timers) clearTimeout(t);
    clearTimeout(this.heartbeatTimer);
    this.runner.stopPolling();
    // It exits and leaves the ranks running, for the next agent to re-adopt.
    this.spawner?.stop();
    this.sub?.unsubscribe();
    this.deleteSub?.unsubscribe();
    this.verifySub?.unsubscribe();
    await this.runner.hooks.shutdown();
    await this.flushRankReports();
    // What the last reports recorded (StateFile.saveLater), so the next agent does not send them again.
    this.state.flush();
  }
}

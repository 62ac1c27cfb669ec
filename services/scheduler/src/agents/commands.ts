// Sends assignments and stops to agents (request/reply, acknowledged). Delivery is also
// level-triggered: reconciliation re-sends anything an agent does not report as done, so
// a lost message only delays, never loses, a command. Re-sends are rate-limited here. Every
// command is signed (libs/bus/src/command-signing.ts): agents run nothing else. The commands
// asked for in one event-loop turn (a scheduling pass dispatches thousands at once) are signed
// as one batch, one Ed25519 signature for all instead of ~40 us of CPU each, and then sent
// one request per command as before; a lone command waits only for the end of the turn.
// The requests are plain publishes with a reply subject under one inbox subscription of this
// commander (what an agent answers to is unchanged: the request's reply subject), and their
// deadlines share one timer: the client's request() built a timer, a promise and up to three
// Errors with stack traces per command, a large share of a pass's CPU.
import type { KeyObject } from 'node:crypto';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { AgentCommandReply, type AgentCommand, type RankAssignment, type StopRank } from '@gantry/proto';
import { decode, signCommands, subjects, type NodeCommand } from '@gantry/bus';
import type { Logger } from '@gantry/service-kit';

/** The most commands under one signature; a larger turn is signed in several batches. */
export const MAX_COMMAND_BATCH = 1024;

/** How long an agent has to answer a command. */
const REPLY_TIMEOUT_MS = 2_000;

interface PendingCommand extends NodeCommand {
  key: string;
  done: (ok: boolean) => void;
}

interface ReplyInbox {
  prefix: string;
  sub: Subscription;
}

interface AwaitedReply {
  inbox: ReplyInbox;
  node: string;
  key: string;
  deadline: number;
  done: (ok: boolean) => void;
}

export class AgentCommander {
  private lastSent = new Map<string, number>();
  private unsigned: PendingCommand[] = [];
  private flushQueued = false;
  /** The reply subscription (`<inbox>.*`), made on the first send and again after it closed. */
  private inbox: ReplyInbox | undefined;
  private nextToken = 0;
  /** Requests awaiting a reply by token, in send order: with one timeout for all, also deadline order. */
  private readonly awaiting = new Map<string, AwaitedReply>();
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(private readonly nc: NatsConnection, private readonly log: Logger, private readonly resendMs: number, private readonly epoch: () => number, private readonly signingKey: KeyObject) {}

  /** Sends unless the same command went out less than resendMs ago; returns whether the agent acknowledged. */
  async assign(node: string, a: RankAssignment, force = false): Promise<boolean> {
    return this.send(node, `assign:${a.jobId}:${a.attempt}:${a.rank}`, { $case: 'assign', assign: a }, force);
  }

  async stop(node: string, s: StopRank, force = false): Promise<boolean> {
    return this.send(node, `stop:${s.jobId}:${s.attempt}:${s.rank}`, { $case: 'stop', stop: s }, force);
  }

  private send(node: string, key: string, command: AgentCommand['command'], force: boolean): Promise<boolean> {
    const now = Date.now();
    const sentKey = `${node}/${key}`;
    const last = this.lastSent.get(sentKey) ?? 0;
    if (!force && now - last < this.resendMs) return Promise.resolve(false);
    const epoch = this.epoch();
    if (epoch === 0) return Promise.resolve(false);
    // Re-inserted, so the map stays in send order and the sends older than resendMs (which
    // limit nothing) are dropped from its front: constant work per send. (A scan of the whole
    // map once it held 10,000 entries cost every send of a busy minute a pass over all of them.)
    this.lastSent.delete(sentKey);
    this.lastSent.set(sentKey, now);
    for (const [k, at] of this.lastSent) {
      if (now - at < this.resendMs) break;
      this.lastSent.delete(k);
    }
    return new Promise((done) => {
      this.unsigned.push({ node, key, command: { epoch, command }, done });
      if (this.unsigned.length >= MAX_COMMAND_BATCH) this.signBatch();
      else if (!this.flushQueued) {
        this.flushQueued = true;
        setImmediate(() => {
          this.flushQueued = false;
          this.signBatch();
        });
      }
    });
  }

  /** Signs the commands asked for so far (one signature) and sends each as a request. */
  private signBatch(): void {
    const batch = this.unsigned;
    if (batch.length === 0) return;
    this.unsigned = [];
    let payloads: Uint8Array[];
    try {
      payloads = signCommands(this.signingKey, batch);
    } catch (err) {
      for (const p of batch) this.notDelivered(p.node, p.key, err, p.done);
      return;
    }
    for (let i = 0; i < batch.length; i++) this.request(batch[i]!, payloads[i]!);
  }

  private request(p: PendingCommand, payload: Uint8Array): void {
    let token: string;
    let inbox: ReplyInbox;
    try {
      inbox = this.replyInbox();
      token = String(this.nextToken++);
      this.nc.publish(subjects.agentCommand(p.node), payload, { reply: `${inbox.prefix}.${token}` });
    } catch (err) {
      this.notDelivered(p.node, p.key, err, p.done);
      return;
    }
    this.awaiting.set(token, { inbox, node: p.node, key: p.key, deadline: Date.now() + REPLY_TIMEOUT_MS, done: p.done });
    this.deadlineTimer ??= setTimeout(() => this.expire(), REPLY_TIMEOUT_MS);
  }

  private replyInbox(): ReplyInbox {
    if (this.inbox && !this.inbox.sub.isClosed()) return this.inbox;
    // The connection's inbox prefix, as its own requests use: NATS permissions may allow only that.
    const prefix = createInbox((this.nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
    const sub = this.nc.subscribe(`${prefix}.*`, { callback: (err, msg) => this.onReply(prefix, err, msg) });
    const inbox: ReplyInbox = { prefix, sub };
    this.inbox = inbox;
    // A closed subscription (the connection closed or drained) answers nothing more: the
    // requests it was to answer fail now rather than at their deadline.
    void sub.closed.then(() => this.inboxClosed(inbox), () => this.inboxClosed(inbox));
    return inbox;
  }

  private onReply(prefix: string, err: Error | null, msg: Msg): void {
    if (err) return;
    const token = msg.subject.slice(prefix.length + 1);
    const r = this.awaiting.get(token);
    if (!r) return; // past its deadline, or a stray
    this.awaiting.delete(token);
    // What the client's request() turns into NoRespondersError: no agent subscribes to the node.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      this.notDelivered(r.node, r.key, new Error(`no responders: ${subjects.agentCommand(r.node)}`), r.done);
      return;
    }
    let ack: AgentCommandReply;
    try {
      ack = decode(AgentCommandReply, msg.data, 'AgentCommandReply');
    } catch (e) {
      this.notDelivered(r.node, r.key, e, r.done);
      return;
    }
    if (!ack.ok) this.log.warn({ node: r.node, key: r.key, message: ack.message }, 'agent refused command');
    r.done(ack.ok);
  }

  /** Fails the requests past their deadline, then waits for the next one's. */
  private expire(): void {
    this.deadlineTimer = undefined;
    const now = Date.now();
    for (const [token, r] of this.awaiting) {
      if (r.deadline > now) {
        this.deadlineTimer = setTimeout(() => this.expire(), r.deadline - now);
        return;
      }
      this.awaiting.delete(token);
      this.notDelivered(r.node, r.key, new Error('timeout'), r.done);
    }
  }

  private inboxClosed(inbox: ReplyInbox): void {
    if (this.inbox === inbox) this.inbox = undefined;
    const err = new Error('connection closed');
    for (const [token, r] of this.awaiting) {
      if (r.inbox !== inbox) continue;
      this.awaiting.delete(token);
      this.notDelivered(r.node, r.key, err, r.done);
    }
    if (this.awaiting.size === 0 && this.deadlineTimer) {
      clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
  }

  private notDelivered(node: string, key: string, err: unknown, done: (ok: boolean) => void): void {
    this.log.debug({ node, key, err: (err as Error).message }, 'agent command not delivered; will retry');
    done(false);
  }
}

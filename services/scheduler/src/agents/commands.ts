// Sends assignments and stops to agents (request/reply, acknowledged). Delivery is also
// level-triggered: reconciliation re-sends anything an agent does not report as done, so
// a lost message only delays, never loses, a command. Re-sends are rate-limited here. Every
// command is signed (libs/bus/src/command-signing.ts): agents run nothing else. The commands
// asked for in one event-loop turn (a scheduling pass dispatches thousands at once) are signed
// as one batch, one Ed25519 signature for all instead of ~40 us of CPU each, and then sent
// one request per command as before; a lone command waits only for the end of the turn.
import type { KeyObject } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentCommandReply, type AgentCommand, type RankAssignment, type StopRank } from '@gantry/proto';
import { decode, signCommands, subjects, type NodeCommand } from '@gantry/bus';
import type { Logger } from '@gantry/service-kit';

/** The most commands under one signature; a larger turn is signed in several batches. */
export const MAX_COMMAND_BATCH = 1024;

interface PendingSignature extends NodeCommand {
  resolve: (payload: Uint8Array) => void;
  reject: (err: unknown) => void;
}

export class AgentCommander {
  private lastSent = new Map<string, number>();
  private unsigned: PendingSignature[] = [];
  private flushQueued = false;

  constructor(private readonly nc: NatsConnection, private readonly log: Logger, private readonly resendMs: number, private readonly epoch: () => number, private readonly signingKey: KeyObject) {}

  /** Sends unless the same command went out less than resendMs ago; returns whether the agent acknowledged. */
  async assign(node: string, a: RankAssignment, force = false): Promise<boolean> {
    return this.send(node, `assign:${a.jobId}:${a.attempt}:${a.rank}`, { $case: 'assign', assign: a }, force);
  }

  async stop(node: string, s: StopRank, force = false): Promise<boolean> {
    return this.send(node, `stop:${s.jobId}:${s.attempt}:${s.rank}`, { $case: 'stop', stop: s }, force);
  }

  private async send(node: string, key: string, command: AgentCommand['command'], force: boolean): Promise<boolean> {
    const now = Date.now();
    const last = this.lastSent.get(`${node}/${key}`) ?? 0;
    if (!force && now - last < this.resendMs) return false;
    const epoch = this.epoch();
    if (epoch === 0) return false;
    // Re-inserted, so the map stays in send order and the sends older than resendMs (which
    // limit nothing) are dropped from its front: constant work per send. (A scan of the whole
    // map once it held 10,000 entries cost every send of a busy minute a pass over all of them.)
    this.lastSent.delete(`${node}/${key}`);
    this.lastSent.set(`${node}/${key}`, now);
    for (const [k, at] of this.lastSent) {
      if (now - at < this.resendMs) break;
      this.lastSent.delete(k);
    }
    try {
      const payload = await this.signed(node, { epoch, command });
      const reply = await this.nc.request(subjects.agentCommand(node), payload, { timeout: 2_000 });
      const ack = decode(AgentCommandReply, reply.data, 'AgentCommandReply');
      if (!ack.ok) this.log.warn({ node, key, message: ack.message }, 'agent refused command');
      return ack.ok;
    } catch (err) {
      this.log.debug({ node, key, err: (err as Error).message }, 'agent command not delivered; will retry');
      return false;
    }
  }

  /** The command's payload, signed with the others asked for in this turn. */
  private signed(node: string, command: AgentCommand): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.unsigned.push({ node, command, resolve, reject });
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

  private signBatch(): void {
    const batch = this.unsigned;
    if (batch.length === 0) return;
    this.unsigned = [];
    let payloads: Uint8Array[];
    try {
      payloads = signCommands(this.signingKey, batch);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => p.resolve(payloads[i]!));
  }
}

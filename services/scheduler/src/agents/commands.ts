// Sends assignments and stops to agents (request/reply, acknowledged). Delivery is also
// level-triggered: reconciliation re-sends anything an agent does not report as done, so
// a lost message only delays, never loses, a command. Re-sends are rate-limited here. Every
// command is signed (libs/bus/src/command-signing.ts): agents run nothing else.
import type { KeyObject } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentCommandReply, type AgentCommand, type RankAssignment, type StopRank } from '@gantry/proto';
import { decode, signCommand, subjects } from '@gantry/bus';
import type { Logger } from '@gantry/service-kit';

export class AgentCommander {
  private lastSent = new Map<string, number>();

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
      const reply = await this.nc.request(subjects.agentCommand(node), signCommand(this.signingKey, node, { epoch, command }), { timeout: 2_000 });
      const ack = decode(AgentCommandReply, reply.data, 'AgentCommandReply');
      if (!ack.ok) this.log.warn({ node, key, message: ack.message }, 'agent refused command');
      return ack.ok;
    } catch (err) {
      this.log.debug({ node, key, err: (err as Error).message }, 'agent command not delivered; will retry');
      return false;
    }
  }
}

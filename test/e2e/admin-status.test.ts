// `gantry admin status` on the HA data plane (three nats-servers in a JetStream cluster, Redis
// primary + replica through Sentinel, two schedulers): it names the leader and its epoch, every
// Gantry process with its version, the NATS server and each stream's three replicas, and the
// Redis primary with its replica.
import { describe, expect, it } from 'vitest';
import { GANTRY_VERSION } from '@gantry/service-kit';
import { keys } from '@gantry/store';
import { stackPerTest } from '../harness/fixtures.js';
import { eventually } from '../harness/stack.js';
import { gantry } from '../harness/tools.js';

const setup = stackPerTest();

describe('gantry admin status', () => {
  it('shows the leader, the services with their versions, NATS stream replicas and Redis replication', async () => {
    const { stack, client } = await setup({ agents: 1, schedulers: 2, ha: true });
    // Each process announces itself on its own schedule: wait until all four have.
    const status = await eventually('both schedulers, the gateway and the checkpoint service announced', async () => {
      const s = await client.getClusterStatus();
      return s.services.length >= 4 && s.services.filter((x) => x.service === 'scheduler').length === 2 ? s : undefined;
    }, 20_000);
    // Either replica may lead (a loaded machine can move the lease): the one Redis names, at an epoch it has issued.
    expect(['scheduler-0', 'scheduler-1']).toContain(status.leader!.instanceId);
    expect(status.leader!.epoch).toBeGreaterThan(0);
    expect(status.leader!.epoch).toBeLessThanOrEqual(Number(await stack.redis.get(keys.leaderEpoch)));
    expect(status.services.map((s) => s.service).sort()).toEqual(['checkpoint', 'gateway', 'scheduler', 'scheduler']);
    expect(status.services.every((s) => s.version === GANTRY_VERSION && !s.stale)).toBe(true);
    expect(status.nats?.cluster).not.toBe('');
    expect(status.streams.length).toBeGreaterThan(0);
    for (const s of status.streams) {
      expect(s.replicas, s.name).toBe(3);
      expect(s.peers.filter((p) => p.leader), s.name).toHaveLength(1);
      expect(s.peers, s.name).toHaveLength(3);
    }
    expect(status.redis).toMatchObject({ role: 'master' });
    expect(status.redis!.sentinelMaster).not.toBe('');
    expect(status.redis!.replicas).toHaveLength(1);
    expect(status.redis!.replicas[0]!.state).toBe('online');

    // Asked again while the lease is between holders (a loaded machine can let it lapse and
    // hand it over; the CLI then says "Leader: none"), as an operator would.
    const cli = await eventually('gantry admin status naming a leader', async () => {
      const r = await gantry(stack, 'admin', 'status');
      return r.code !== 0 || /^Leader: +scheduler-[01], epoch \d+, lease [\d.]+ s left$/m.test(r.stdout) ? r : undefined;
    }, 20_000, 500);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^Leader: +scheduler-[01], epoch \d+, lease [\d.]+ s left$/m);
    expect(cli.stdout).toMatch(/^Redis: +master \(through Sentinel, master \S+\), 1 replica\(s\)$/m);
    expect(cli.stdout).toMatch(new RegExp(`^ {2}gateway +\\S+ +${GANTRY_VERSION.replace(/\./g, '\\.')} `, 'm'));
  });
});

// The gateway serves WatchJob and StreamLogs from JetStream through an ephemeral consumer per
// call; a finished (or refused) call must not leave its consumer on the server for the
// minutes of its inactive threshold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { GantryClient } from '@gantry/sdk';
import { JobState } from '@gantry/proto';
import { streams } from '@gantry/bus';
import { TestStack, eventually } from '../harness/stack.js';

let stack: TestStack;
let client: GantryClient;
let nc: NatsConnection;

beforeAll(async () => {
  stack = await new TestStack({ agents: 1 }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000 });
  nc = await connect(stack.natsOptions());
});

afterAll(async () => {
  client?.close();
  await nc?.close();
  await stack?.stop();
});

/** The stream's consumer count, from the JetStream API (STREAM.INFO). */
async function consumers(stream: string): Promise<number> {
  const reply = await nc.request(`$JS.API.STREAM.INFO.${stream}`, new Uint8Array(), { timeout: 5_000 });
  return (JSON.parse(new TextDecoder().decode(reply.data)) as { state: { consumer_count: number } }).state.consumer_count;
}

describe('gateway stream consumers', () => {
  it('a watch and a log stream that ended, and a watch refused, leave no consumer behind', async () => {
    // The services' own (durable) consumers.
    const before = { events: await consumers(streams.events.name), logs: await consumers(streams.logs.name) };
    const { job } = await client.submitJob({ name: 'watched', nodes: 1, gpusPerNode: 1, command: ['sh', '-c', 'echo hello'] });
    const states: JobState[] = [];
    for await (const ev of client.watchJob(job!.id)) {
      states.push(ev.toState);
      if (ev.toState === JobState.JOB_STATE_SUCCEEDED) break;
    }
    expect(states).toContain(JobState.JOB_STATE_SUCCEEDED);
    const lines: string[] = [];
    for await (const l of client.streamLogs(job!.id, { follow: false })) lines.push(l.line?.text ?? '');
    expect(lines).toEqual(['hello']);
    await expect((async () => { for await (const _ of client.watchJob('j-does-not-exist')) { /* none */ } })()).rejects.toThrow(/not found/i);
    await eventually('the consumers to be deleted', async () => (await consumers(streams.events.name)) === before.events && (await consumers(streams.logs.name)) === before.logs, 10_000);
  });
});

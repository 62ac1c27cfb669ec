// The agents of the Redis-commit bench, in a process of their own (so that their CPU is not
// counted as the scheduler's): one subscription to every node's command subject, each
// command acknowledged as an agent that accepted it would be. Prints "ready" once subscribed,
// and "received N" when its stdin closes.
// Usage: node --import tsx services/scheduler/bench/simulated-agents.ts NATS_URL
import { pino } from 'pino';
import { AgentCommandReply } from '@gantry/proto';
import { encode, subjects } from '@gantry/bus';
import { connectNats } from '@gantry/service-kit';

const nc = await connectNats(process.argv[2]!, 'bench-agents', pino({ level: 'silent' }));
const ok = encode(AgentCommandReply, AgentCommandReply.create({ ok: true }));
let received = 0;
nc.subscribe(subjects.agentCommandAll, {
  callback: (err, msg) => {
    if (err) return;
    received++;
    msg.respond(ok);
  },
});
await nc.flush();
console.log('ready');
process.stdin.resume();
process.stdin.on('end', () => {
  console.log(`received ${received}`);
  void nc.close().then(() => process.exit(0));
});

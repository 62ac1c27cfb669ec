// The heartbeat thread's entry (started by HeartbeatThread): its own NATS and Redis
// connections and event loop, so that recording a heartbeat's time never waits behind the main
// thread's work or its garbage collection. Runs a HeartbeatRecorder and passes what it records
// (and drops) to the main thread, which reconciles.
import { parentPort, workerData } from 'node:worker_threads';
import { NodeStore } from '@gantry/store';
import { connectNats, connectRedis, createLogger } from '@gantry/service-kit';
import { HeartbeatRecorder } from './heartbeat-recorder.js';
import type { HeartbeatThreadData, ToHeartbeatThread, FromHeartbeatThread } from './heartbeat-thread.js';

const data = workerData as HeartbeatThreadData;
const port = parentPort!;
const post = (m: FromHeartbeatThread) => port.postMessage(m);
const log = createLogger('scheduler', data.logLevel).child({ thread: 'heartbeats' });
const redis = connectRedis(data.redis, log);
const nc = await connectNats(data.natsUrl, `scheduler ${data.instanceId} heartbeats`, log, data.natsCredsFile);
const recorder = new HeartbeatRecorder({ nc, nodes: new NodeStore(redis), log }, {
  recorded: (beats, lagsSec) => post({ type: 'recorded', beats, lagsSec }),
  drop: (kind, reason, detail) => post({ type: 'drop', kind, reason, detail }),
});
port.on('message', (m: ToHeartbeatThread) => {
  if (m.type === 'lead') {
    void recorder.lead(m.epoch).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'heartbeat subscription not confirmed')).finally(() => post({ type: 'leading', epoch: m.epoch }));
    return;
  }
  void (async () => {
    await recorder.close();
    await nc.drain().catch(() => undefined);
    await redis.quit().catch(() => undefined);
    post({ type: 'closed' });
    port.close();
  })();
});
post({ type: 'ready' });

// The agent intake thread's entry (started by AgentIntakeThread): its own NATS and Redis
// connections, event loop and heap, so that recording heartbeats and storing telemetry never
// wait behind the main thread's work or its garbage collection. Runs a HeartbeatRecorder and
// a TelemetryBatchIngest while this replica leads, and passes what they record (and drop) to
// the main thread, which reconciles, counts and logs.
import { parentPort, workerData } from 'node:worker_threads';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { NodeStore } from '@gantry/store';
import { connectNats, connectRedis, createLogger } from '@gantry/service-kit';
import { HeartbeatRecorder } from './heartbeat-recorder.js';
import { AgentMessageGuard } from './message-guard.js';
import { TelemetryBatchIngest } from '../telemetry/batch-ingest.js';
import type { IntakeThreadData, ToIntakeThread, FromIntakeThread } from './intake-thread.js';

const data = workerData as IntakeThreadData;
const port = parentPort!;
const post = (m: FromIntakeThread) => port.postMessage(m);
const log = createLogger('scheduler', data.logLevel).child({ thread: 'intake' });
const redis = connectRedis(data.redis, log);
const nc = await connectNats(data.natsUrl, `scheduler ${data.instanceId} intake`, log, data.natsCredsFile);
const guard = AgentMessageGuard.forwarding((kind, reason, detail) => post({ type: 'drop', kind, reason, detail }));
const heartbeats = new HeartbeatRecorder({ nc, nodes: new NodeStore(redis), log, guard }, {
  recorded: (beats, lagsSec) => post({ type: 'recorded', beats, lagsSec }),
});
const telemetry = new TelemetryBatchIngest({ nc, redis, log, guard }, {
  stored: (lagsSec) => post({ type: 'telemetry', lagsSec }),
});

/** Leads or stops leading: heartbeats first (liveness), then the telemetry consumer. */
async function lead(epoch: number): Promise<void> {
  await heartbeats.lead(epoch);
  if (epoch > 0) await telemetry.start();
  else await telemetry.stop();
}

// Leadership changes one at a time, in the order they came.
let leading = Promise.resolve();
port.on('message', (m: ToIntakeThread) => {
  if (m.type === 'lead') {
    leading = leading.then(() => lead(m.epoch))
      .catch((e: unknown) => log.error({ err: (e as Error).message, epoch: m.epoch }, 'intake leadership change failed'))
      .finally(() => post({ type: 'leading', epoch: m.epoch }));
    return;
  }
  void leading.then(async () => {
    await lead(0).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await redis.quit().catch(() => undefined);
    post({ type: 'closed' });
    port.close();
  });
});
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const stats = setInterval(() => {
  post({ type: 'stats', heapUsedBytes: getHeapStatistics().used_heap_size, loopDelayP99Sec: loop.percentile(99) / 1e9, loopDelayMaxSec: loop.max / 1e9 });
  loop.reset();
}, data.statsEveryMs ?? 5_000);
stats.unref();
post({ type: 'ready' });

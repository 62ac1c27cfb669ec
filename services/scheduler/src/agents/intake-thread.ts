// The main thread's side of the agent intake thread (intake-worker.ts): starts it, tells it when
// this replica leads, hands the heartbeats it records to the node registry and what it counts
// to this thread's metrics, and starts it again if it dies (heartbeats are resent every
// interval and telemetry waits in JetStream: nothing is lost for good while it restarts).
import { Worker } from 'node:worker_threads';
import { Gauge, type Registry } from 'prom-client';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger, RedisTarget } from '@gantry/service-kit';
import type { AgentMessageGuard, AgentMessageKind, DropReason } from './message-guard.js';
import type { HeartbeatFeed, HeartbeatSink, RecordedHeartbeat } from './heartbeat-recorder.js';
import type { TelemetrySink } from '../telemetry/batch-ingest.js';

/** Connection settings the thread needs (workerData: plain data). */
export interface IntakeThreadData {
  natsUrl: string;
  natsCredsFile?: string;
  redis: RedisTarget;
  logLevel: string;
  instanceId: string;
  /** How often the thread reports its heap and event-loop delay (IntakeStats); 5 s when absent. */
  statsEveryMs?: number;
  /** The TypeScript entry, when the thread starts from sources (intake-worker-boot.mjs loads it). */
  entry?: string;
}

export type ToIntakeThread = { type: 'lead'; epoch: number } | { type: 'close' };
export type FromIntakeThread =
  | { type: 'ready' }
  | { type: 'leading'; epoch: number }
  | { type: 'recorded'; beats: RecordedHeartbeat[]; lagsSec: number[] }
  | { type: 'telemetry'; lagsSec: number[] }
  | { type: 'stats'; heapUsedBytes: number; loopDelayP99Sec: number; loopDelayMaxSec: number }
  | { type: 'drop'; kind: AgentMessageKind; reason: DropReason; detail: Record<string, unknown> }
  | { type: 'closed' };

/** Set by deploy/local/bundle.ts (esbuild `define`) in a bundled scheduler: where its bundles are. */
declare const __GANTRY_BUNDLE_DIR__: string | undefined;

/** The thread's bundle, beside the scheduler's in a bundled build; else the sources through tsx. */
function workerEntry(): { file: URL; entry?: string } {
  if (typeof __GANTRY_BUNDLE_DIR__ === 'string') return { file: pathToFileURL(join(__GANTRY_BUNDLE_DIR__, 'scheduler-intake.mjs')) };
  return { file: new URL('./intake-worker-boot.mjs', import.meta.url), entry: new URL('./intake-worker.ts', import.meta.url).href };
}

/**
 * The thread's own health on the main thread's metrics: prom-client's process and event-loop
 * metrics see only the main thread, and a stalled intake thread is what makes nodes look silent.
 */
class IntakeStats {
  private readonly heap: Gauge;
  private readonly delay: Gauge<'quantile'>;

  constructor(metrics: Registry) {
    this.heap = new Gauge({ name: 'gantry_intake_thread_heap_used_bytes', help: 'V8 heap used by the leader\'s agent intake thread (heartbeats and telemetry)', registers: [metrics] });
    this.delay = new Gauge({ name: 'gantry_intake_thread_event_loop_delay_seconds', help: 'Event-loop delay of the agent intake thread over its last report (quantile p99 or max)', labelNames: ['quantile'], registers: [metrics] });
  }

  report(m: { heapUsedBytes: number; loopDelayP99Sec: number; loopDelayMaxSec: number }): void {
    this.heap.set(m.heapUsedBytes);
    this.delay.set({ quantile: 'p99' }, m.loopDelayP99Sec);
    this.delay.set({ quantile: 'max' }, m.loopDelayMaxSec);
  }
}

/** A thread that died is started again after this (then twice as long each time it dies again at once, up to 10 s). */
const RESTART_MS = 500;

/** Where the thread's results go on the main thread. */
export interface IntakeSinks {
  heartbeats: HeartbeatSink;
  telemetry: TelemetrySink;
  /** Counts and logs the messages the thread dropped. */
  guard: AgentMessageGuard;
}

export class AgentIntakeThread implements HeartbeatFeed {
  private worker: Worker | undefined;
  private ready = false;
  private epoch = 0;
  private closing = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** lead() calls waiting for the thread to confirm; resolved in order (or at exit). */
  private acks: (() => void)[] = [];

  private readonly stats: IntakeStats;

  constructor(private readonly data: IntakeThreadData, private readonly sinks: IntakeSinks, private readonly log: Logger, metrics: Registry) {
    this.stats = new IntakeStats(metrics);
  }

  /** Starts the thread; resolves once it has connected to NATS and Redis. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => this.spawn(resolve, reject));
  }

  lead(epoch: number): Promise<void> {
    this.epoch = epoch;
    if (!this.ready) return Promise.resolve(); // sent once the thread is ready
    this.send({ type: 'lead', epoch });
    return new Promise((resolve) => this.acks.push(resolve));
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    const w = this.worker;
    if (!w) return;
    const closed = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    if (this.ready) this.send({ type: 'close' });
    else void w.terminate();
    // A thread stuck on a connection that does not answer is not waited for past this.
    const timer = setTimeout(() => void w.terminate(), 5_000);
    await closed;
    clearTimeout(timer);
  }

  private send(m: ToIntakeThread): void {
    this.worker?.postMessage(m);
  }

  private spawn(onReady?: () => void, onFail?: (e: Error) => void): void {
    const { file, entry } = workerEntry();
    const w = new Worker(file, { workerData: { ...this.data, entry } satisfies IntakeThreadData });
    this.worker = w;
    this.ready = false;
    let wasReady = false;
    w.on('message', (m: FromIntakeThread) => {
      switch (m.type) {
        case 'ready':
          this.ready = wasReady = true;
          this.restarts = 0;
          if (this.epoch > 0) this.send({ type: 'lead', epoch: this.epoch });
          onReady?.();
          break;
        case 'recorded':
          this.sinks.heartbeats.recorded(m.beats, m.lagsSec);
          break;
        case 'stats':
          this.stats.report(m);
          break;
        case 'telemetry':
          this.sinks.telemetry.stored(m.lagsSec);
          break;
        case 'drop':
          this.sinks.guard.drop(m.kind, m.reason, m.detail);
          break;
        case 'leading':
          this.acks.shift()?.();
          break;
        case 'closed':
          break;
      }
    });
    w.on('error', (err) => {
      this.log.error({ err: err.message }, 'agent intake thread failed');
      if (!wasReady) onFail?.(err);
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.worker = undefined;
      this.ready = false;
      for (const resolve of this.acks.splice(0)) resolve();
      // The first start failing fails start() (the service does not come up half-wired).
      if (this.closing || (onFail && !wasReady)) {
        if (!wasReady) onFail?.(new Error(`agent intake thread exited with code ${code} before it was ready`));
        return;
      }
      const delayMs = Math.min(RESTART_MS * 2 ** this.restarts++, 10_000);
      this.log.error({ code, delayMs }, 'agent intake thread exited; starting it again');
      this.restartTimer = setTimeout(() => this.spawn(), delayMs);
    });
  }
}

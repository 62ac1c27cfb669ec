// What the hang detector needs from the jobs' output: when each job last wrote a line, and
// the NCCL watchdog / collective timeout lines its ranks printed. A plain subscription on the
// log subjects (the log stream itself is the gateway's); it keeps only a timestamp per job
// and the timeout lines of the current window. After a leader change the new leader knows
// nothing of earlier output, and the detector then needs stalled GPUs and NCCL timeouts to
// agree before it calls a hang (the conservative case).
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { LogBatch } from '@gantry/proto';
import { subjects } from '@gantry/bus';
import type { NcclTimeoutLine } from '../health/index.js';

/** Lines that say a collective is stuck: PyTorch's NCCL watchdog and NCCL's own timeouts. */
export const NCCL_TIMEOUT = /Watchdog caught collective operation timeout|NCCL.*(timed? ?out|Timeout|watchdog)|ProcessGroupNCCL.*(timeout|Timeout)|collective operation timeout/i;

const MAX_LINES_PER_WINDOW = 1_000;

interface SeenLine extends NcclTimeoutLine {
  job: string;
}

export class LogActivity {
  private sub: Subscription | undefined;
  private readonly lastLog = new Map<string, number>();
  private nccl: SeenLine[] = [];

  constructor(private readonly nc: NatsConnection) {}

  start(): void {
    this.sub = this.nc.subscribe(subjects.logsAll, {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.observe(LogBatch.decode(msg.data), Date.now());
        } catch {
          // Not ours to judge: the gateway's consumer reports malformed batches.
        }
      },
    });
  }

  observe(batch: LogBatch, nowMs: number): void {
    let last = this.lastLog.get(batch.jobId) ?? 0;
    for (const l of batch.lines) {
      const at = l.time?.getTime() ?? nowMs;
      if (at > last) last = at;
      if (this.nccl.length < MAX_LINES_PER_WINDOW && NCCL_TIMEOUT.test(l.text)) this.nccl.push({ node: batch.node, timeMs: at, line: l.text.slice(0, 300), job: batch.jobId });
    }
    if (last > 0) this.lastLog.set(batch.jobId, last);
  }

  lastLogMs(jobId: string): number | undefined {
    return this.lastLog.get(jobId);
  }

  /** The timeout lines seen since the last call, by job; the window's lines are then dropped. */
  takeNcclTimeouts(): Map<string, NcclTimeoutLine[]> {
    const out = new Map<string, NcclTimeoutLine[]>();
    for (const l of this.nccl) {
      const list = out.get(l.job) ?? [];
      list.push({ node: l.node, timeMs: l.timeMs, line: l.line });
      out.set(l.job, list);
    }
    this.nccl = [];
    return out;
  }

  /** Forgets jobs that no longer run. */
  retain(jobIds: ReadonlySet<string>): void {
    for (const id of this.lastLog.keys()) if (!jobIds.has(id)) this.lastLog.delete(id);
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.lastLog.clear();
    this.nccl = [];
  }
}

// Reports rank starts, exits and output to the control plane over JetStream. What has been
// reported is recorded in the state file, so nothing is lost while NATS is unreachable or
// the agent restarts, and the stable message ids make a re-send harmless (de-duplicated).
// That record is written with the next state write, or soon after (StateFile.saveLater):
// lost in a crash, it only makes the restarted agent send the same messages again. What a
// report says (a rank's exit) is on disk before it is sent.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { LogBatch, LogLine, LogStream, RankEvent, RankPhase } from '@gantry/proto';
import { encode, subjects } from '@gantry/bus';
import { processesOf, type ProcessRecord, type RankRecord, type StateFile } from '../runner/state-file.js';
import { LogTail, truncateShipped } from '../runner/log-tail.js';
import { join } from 'node:path';

const MAX_LINES_PER_BATCH = 500;
/** Well under NATS's default 1 MiB max_payload, whatever the lines look like. */
const MAX_BATCH_BYTES = 512 * 1024;

/** Splits lines into batches bounded by count and by bytes (a line is at most MAX_LINE_BYTES). */
export function batchLines(lines: string[]): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const l of lines) {
    const b = Buffer.byteLength(l) + 16;
    if (cur.length > 0 && (cur.length >= MAX_LINES_PER_BATCH || bytes + b > MAX_BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(l);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export class RankReporter {
  private readonly tails = new Map<string, { stdout: LogTail; stderr: LogTail }>();
  private busy = false;
  /** A flush was asked for during a pass: run another at its end (a change is not left for the next tick). */
  private again = false;

  constructor(
    private readonly node: string,
    private readonly js: JetStreamClient,
    private readonly state: StateFile,
    private readonly log: Logger,
    /** Per rank and stream, the most log bytes kept on the host after they were shipped (0 = no limit). */
    private readonly maxLogBytes = 0,
    /** This agent process (RegisterNodeRequest.instance_id), stamped on every rank event. */
    private readonly instanceId = '',
  ) {}

  /** One pass: ship new output of every rank, then any unreported start or exit, in that order. */
  async flush(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      do {
        this.again = false;
        let failed = false;
        for (const rec of this.state.unsettled()) {
          // One rank's trouble must not hold back the reports of the others.
          try {
            await this.flushRank(rec);
          } catch (err) {
            failed = true;
            this.log.debug({ rank: this.key(rec), err: (err as Error).message }, 'report not sent; will retry');
          }
        }
        // After a failure the periodic pass retries; no tight loop while NATS is away.
        if (failed) break;
      } while (this.again);
    } finally {
      this.busy = false;
    }
  }

  /** Start first, then output, then the exit: the scheduler sees a rank end after its logs. */
  private async flushRank(rec: RankRecord): Promise<void> {
    if (!rec.startReported) {
      // A rank assigned in this turn may not be written yet: the scheduler must not hear of a
      // rank a restarted agent would not know.
      this.state.settle();
      await this.publishEvent(rec, RankPhase.RANK_PHASE_STARTED);
      rec.startReported = true;
      this.state.saveLater();
    }
    const final = rec.phase === 'exited';
    await this.shipLogs(rec, final);
    if (final) {
      // The exit as recorded, not as it might be recorded again after a crash.
      this.state.settle();
      await this.publishEvent(rec, RankPhase.RANK_PHASE_EXITED);
      rec.exitReported = true;
      for (const p of processesOf(rec)) this.dropTails(`${this.key(rec)}#${p.local}`);
      this.state.saveLater();
    }
  }

  /** Forgets a process's log tails, closing their files. */
  private dropTails(key: string): void {
    const tails = this.tails.get(key);
    if (!tails) return;
    tails.stdout.close();
    tails.stderr.close();
    this.tails.delete(key);
  }

  private key(rec: RankRecord): string {
    return `${rec.jobId}:${rec.attempt}:${rec.rank}`;
  }

  private async publishEvent(rec: RankRecord, phase: RankPhase): Promise<void> {
    const exited = phase === RankPhase.RANK_PHASE_EXITED;
    const event = RankEvent.create({
      eventId: `${rec.jobId}.${rec.attempt}.${rec.rank}.${exited ? 'exited' : 'started'}`,
      node: this.node, jobId: rec.jobId, attempt: rec.attempt, rank: rec.rank, phase, pid: rec.pid,
      exitCode: exited ? rec.exitCode : undefined, signal: exited ? rec.signal ?? '' : '', message: rec.message ?? '',
      time: new Date(exited ? rec.finishedAt ?? Date.now() : rec.startedAt),
      error: exited ? rec.error ?? '' : '',
      errorTime: exited && rec.errorTime ? new Date(rec.errorTime) : undefined,
      instanceId: this.instanceId,
    });
    await this.js.publish(subjects.rankEvent(this.node), encode(RankEvent, event), { msgID: event.eventId, timeout: 5_000 });
  }

  /**
   * Ships what each process of the rank wrote since the last pass. Sequence numbers count per
   * process and stream, so a re-read after a failed publish gives every line its old number
   * (and every batch its old message id); per GPU, lines carry their LOCAL_RANK.
   */
  private async shipLogs(rec: RankRecord, final: boolean): Promise<void> {
    for (const p of processesOf(rec)) await this.shipProcessLogs(rec, p, final);
    this.state.saveLater();
  }

  private async shipProcessLogs(rec: RankRecord, p: ProcessRecord, final: boolean): Promise<void> {
    const key = `${this.key(rec)}#${p.local}`;
    let tails = this.tails.get(key);
    if (!tails) {
      tails = { stdout: new LogTail(join(p.dir, 'stdout.log'), p.logs.stdout.offset), stderr: new LogTail(join(p.dir, 'stderr.log'), p.logs.stderr.offset) };
      this.tails.set(key, tails);
    }
    // Per node, message ids keep the form they had before node ranks could have several processes.
    const idBase = rec.perGpu ? `${rec.jobId}.${rec.attempt}.${rec.rank}.l${p.local}` : `${rec.jobId}.${rec.attempt}.${rec.rank}`;
    const localRank = rec.perGpu ? p.local : undefined;
    for (const stream of ['stdout', 'stderr'] as const) {
      const tail = tails[stream];
      const lines = tail.readLines(final);
      const cursor = p.logs[stream];
      const seqAtStart = cursor.seq;
      for (const chunk of batchLines(lines)) {
        const first = cursor.seq + 1;
        const batch = LogBatch.create({
          jobId: rec.jobId, attempt: rec.attempt, rank: rec.rank, node: this.node,
          lines: chunk.map((text, j) => LogLine.create({ seq: first + j, stream: stream === 'stdout' ? LogStream.LOG_STREAM_STDOUT : LogStream.LOG_STREAM_STDERR, text, time: new Date(), localRank })),
        });
        try {
          await this.js.publish(subjects.logs(rec.jobId, rec.attempt, rec.rank, this.node), encode(LogBatch, batch), { msgID: `${idBase}.${stream}.${first}-${first + chunk.length - 1}`, timeout: 5_000 });
        } catch (err) {
          // Rewind so these lines are read again with the same sequence numbers (and so the
          // same message ids: whatever did reach the stream is de-duplicated).
          cursor.seq = seqAtStart;
          this.dropTails(key);
          throw err;
        }
        cursor.seq += chunk.length;
      }
      cursor.offset = final ? tail.offset : tail.committedOffset;
      if (!final && truncateShipped(tail, this.maxLogBytes)) {
        cursor.offset = 0;
        this.log.info({ rank: key, stream, bytes: this.maxLogBytes }, 'rank log shipped and truncated on the host');
      }
    }
  }
}

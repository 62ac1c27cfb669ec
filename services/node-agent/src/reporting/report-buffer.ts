// A bounded, ordered, on-disk queue of reports for the control plane. Every telemetry batch
// and host event is written here first and sent from here, so an outage of NATS (or a
// restart of the agent) delays reports but loses none. When the buffer is full, the oldest
// telemetry is dropped (and counted); events are never dropped.
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ReportKind = 'event' | 'telemetry';

export interface BufferedReport {
  seq: number;
  kind: ReportKind;
  subject: string;
  msgId: string;
  data: Uint8Array;
}

export interface ReportBufferOptions {
  /** Upper bound of the buffer on disk; telemetry beyond it is dropped oldest first. */
  maxBytes: number;
}

const NAME = /^(\d{16})-(event|telemetry)\.rpt$/;

export class ReportBuffer {
  private nextSeq: number;
  private bytes = 0;
  private readonly sizes = new Map<string, number>();
  /** Telemetry reports dropped because the buffer was full, since this agent started. */
  dropped = 0;

  constructor(readonly dir: string, private readonly opts: ReportBufferOptions) {
    mkdirSync(dir, { recursive: true });
    let last = 0;
    for (const f of this.files()) {
      const size = statSync(join(dir, f)).size;
      this.sizes.set(f, size);
      this.bytes += size;
      last = Number(NAME.exec(f)![1]);
    }
    this.nextSeq = last + 1;
  }

  private files(): string[] {
    return readdirSync(this.dir).filter((f) => NAME.test(f)).sort();
  }

  get length(): number {
    return this.sizes.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  append(kind: ReportKind, subject: string, msgId: string, data: Uint8Array): void {
    const name = `${String(this.nextSeq++).padStart(16, '0')}-${kind}.rpt`;
    const header = Buffer.from(`${JSON.stringify({ subject, msgId })}\n`);
    const body = Buffer.concat([header, data]);
    const tmp = join(this.dir, `${name}.tmp`);
    writeFileSync(tmp, body);
    renameSync(tmp, join(this.dir, name));
    this.sizes.set(name, body.length);
    this.bytes += body.length;
    this.enforceBound();
  }

  private enforceBound(): void {
    if (this.bytes <= this.opts.maxBytes) return;
    for (const f of this.files()) {
      if (this.bytes <= this.opts.maxBytes) break;
      if (!f.endsWith('-telemetry.rpt')) continue;
      this.remove(f);
      this.dropped++;
    }
  }

  private remove(name: string): void {
    try {
      unlinkSync(join(this.dir, name));
    } catch {
      // already gone
    }
    this.bytes -= this.sizes.get(name) ?? 0;
    this.sizes.delete(name);
  }

  /** The oldest `max` reports, in order. */
  peek(max: number): (BufferedReport & { file: string })[] {
    return this.files().slice(0, max).flatMap((file) => {
      let raw: Buffer;
      try {
        raw = readFileSync(join(this.dir, file));
      } catch {
        return [];
      }
      const nl = raw.indexOf(0x0a);
      const m = NAME.exec(file)!;
      try {
        const { subject, msgId } = JSON.parse(raw.subarray(0, nl).toString()) as { subject: string; msgId: string };
        return [{ file, seq: Number(m[1]), kind: m[2] as ReportKind, subject, msgId, data: raw.subarray(nl + 1) }];
      } catch {
        this.remove(file); // a torn file from a crash mid-write of an older format: unusable
        return [];
      }
    });
  }

  ack(file: string): void {
    this.remove(file);
  }
}

// One long-running `nvidia-smi ... -lms <interval>` instead of a fork per telemetry cycle.
// nvidia-smi starts the driver's management library once and then prints a fresh reading
// every interval; this keeps the newest complete reading. A reading is one burst of output
// (`--query-gpu` rows): it ends when the output has been quiet for `settleMs` (bursts are an
// interval apart).
import { spawn, type ChildProcess } from 'node:child_process';
import { NvidiaSmiError } from '../collectors/gpu/reader.js';

export interface SmiLoopOptions {
  binary: string;
  /** The one-shot arguments; `-lms <intervalMs>` is appended. */
  args: readonly string[];
  intervalMs: number;
  /** Quiet time that ends a reading (default 50 ms). */
  settleMs?: number;
}

export class SmiLoop {
  private child: ChildProcess | undefined;
  private pending = '';
  private settle: NodeJS.Timeout | undefined;
  private latest: { text: string; at: number } | undefined;
  private waiters: { resolve: (text: string) => void; reject: (err: Error) => void }[] = [];
  private stderr = '';

  constructor(private readonly options: SmiLoopOptions) {}

  /** The running nvidia-smi's pid (for the benchmark's CPU accounting), if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * The newest reading if it is at most one interval (plus slack) old, else the next one;
   * rejects after `timeoutMs` (a hung driver hangs nvidia-smi too: the loop is then killed and
   * starts afresh on the next read) or when nvidia-smi exits.
   */
  read(timeoutMs: number): Promise<string> {
    if (this.latest && Date.now() - this.latest.at <= this.options.intervalMs * 1.5 + 1000) return Promise.resolve(this.latest.text);
    this.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new NvidiaSmiError(`nvidia-smi ${this.describe()}: no reading within ${timeoutMs} ms`, this.stderr, true));
      }, timeoutMs);
      this.waiters.push({
        resolve: (t) => (clearTimeout(timer), resolve(t)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  stop(): void {
    const child = this.child;
    this.child = undefined;
    if (this.settle) clearTimeout(this.settle);
    child?.kill('SIGKILL');
  }

  private describe(): string {
    return [...this.options.args, '-lms', String(this.options.intervalMs)].join(' ');
  }

  private start(): void {
    if (this.child) return;
    this.pending = '';
    this.stderr = '';
    this.latest = undefined;
    const child = spawn(this.options.binary, [...this.options.args, '-lms', String(this.options.intervalMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    // The agent's event loop must not wait on it, and nvidia-smi dies of SIGPIPE at its next
    // reading if the agent is gone.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onData(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      if (this.stderr.length < 64 << 10) this.stderr += chunk;
    });
    child.on('error', (err) => this.child === child && this.fail(new NvidiaSmiError(`nvidia-smi ${this.describe()}: ${err.message}`, this.stderr, false, { cause: err })));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      // Whatever it printed last (e.g. "Unable to determine the device handle") is the error's text.
      this.fail(new NvidiaSmiError(`nvidia-smi ${this.describe()}: exited (${signal ?? code})`, `${this.pending}${this.stderr}`, false));
    });
  }

  private onData(chunk: string): void {
    this.pending += chunk;
    if (this.settle) clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      if (this.pending.endsWith('\n')) {
        this.publish(this.pending);
        this.pending = '';
      }
    }, this.options.settleMs ?? 50);
    this.settle.unref();
  }

  private publish(text: string): void {
    this.latest = { text, at: Date.now() };
    for (const w of this.waiters.splice(0)) w.resolve(text);
  }

  private fail(err: Error): void {
    this.stop();
    this.latest = undefined;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

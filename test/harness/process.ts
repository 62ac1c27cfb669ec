// A child process the tests can kill (any signal) and start again with the same arguments, and
// a look at which processes of a process group are still alive.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile: string;
  /** Resolves once the process is ready to serve (polling a port, a health check...). */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
}

/**
 * Every child still running. When the test process exits without stopping them (a failed
 * hook, a worker torn down at a timeout), they are killed with it rather than left behind.
 */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export class ManagedProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(readonly opts: ManagedProcessOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Exit code of the last run (null while running or when killed by a signal). */
  get exitCode(): number | null {
    return this.child?.exitCode ?? null;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.opts.logFile), { recursive: true });
    this.log = createWriteStream(this.opts.logFile, { flags: 'a' });
    const child = spawn(this.opts.command, this.opts.args, {
      cwd: this.opts.cwd,
      env: { ...process.env, ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    // 'close' comes once its output is all read (into the log).
    const closed = new Promise((resolve) => child.once('close', resolve));
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if (!this.running) {
        await Promise.race([closed, new Promise((r) => setTimeout(r, 1_000))]);
        await new Promise((r) => this.log!.write('', r)); // after what was piped before it
        throw new Error(`${this.opts.name} exited during start-up (code ${child.exitCode}); the end of ${this.opts.logFile}:\n${this.logTail()}`);
      }
      if (await this.opts.ready().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.opts.name} not ready within ${this.opts.readyTimeoutMs ?? 30_000} ms; the end of ${this.opts.logFile}:\n${this.logTail()}`);
  }

  /**
   * The last lines of the log, for a start-up error: a failed start stops the stack, whose
   * folder (and this log) goes with it, so CI would keep nothing else of why.
   */
  private logTail(lines = 20): string {
    try {
      return readFileSync(this.opts.logFile, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => l.slice(0, 500)).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  /** Freezes the process (SIGSTOP) without killing it, e.g. a paused leader. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

/** Live processes of a process group (Linux /proc): a rank's wrapper, watchdog, command and whatever it forked. */
export function processGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // After the command name: the state, then the parent, then the process group; a zombie is gone for our purposes.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') out.push(Number(e));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

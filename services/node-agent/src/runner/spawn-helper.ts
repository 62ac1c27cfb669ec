// The agent's side of gantry-spawn (native/gantry-spawn.c, built by `pnpm build:spawn`): a
// small long-lived process that forks the ranks' wrappers for the agent. Forking from the agent
// itself (a Node process of 100+ MB) copies its page tables and stalls its event loop until the
// child has exec'd: about a millisecond of the agent's CPU per process. Through the spawner the
// agent writes one request to a pipe, and many starts of one turn go out together.
//
// The spawner is the wrappers' parent, so it reports their exits ("X" lines). If it dies, its
// children are re-parented and go on running; the runner then watches them as it watches ranks
// a previous agent started (polling), and starts new ones itself (`onGone`).
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Logger } from 'pino';

export interface SpawnRequest {
  /** Executable path (no PATH lookup). */
  file: string;
  /** argv, argv[0] included. */
  argv: string[];
  /** Working directory ('' keeps the spawner's). */
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Files stdout and stderr are appended to (created if missing). */
  stdout: string;
  stderr: string;
  /** Run as this uid/gid (supplementary groups dropped); both absent: as the agent. */
  uid?: number;
  gid?: number;
}

export type SpawnOutcome = { pid: number } | { error: string };
/** How a child ended, as Node's 'exit' event says it. */
export type ExitListener = (code: number | null, signal: NodeJS.Signals | null) => void;

const READY_TIMEOUT_MS = 5_000;
const errnoNames = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]));
const signalNames = new Map(Object.entries(constants.signals).map(([k, v]) => [v, k as NodeJS.Signals]));

export class SpawnHelper {
  private readonly starts = new Map<number, { file: string; done: (o: SpawnOutcome) => void; onExit: ExitListener }>();
  private readonly exits = new Map<number, ExitListener>();
  private nextId = 1;
  private partial = '';
  private gone = false;
  /** The spawner ended (or broke its protocol): its children are no longer reported. */
  onGone: (why: string) => void = () => undefined;

  private constructor(private readonly proc: ChildProcess, private readonly log: Logger) {}

  /** Starts the spawner at `path` and waits for its ready line. */
  static start(path: string, log: Logger): Promise<SpawnHelper> {
    return new Promise((resolve, reject) => {
      const proc = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
      const helper = new SpawnHelper(proc, log);
      let ready = false;
      const timer = setTimeout(() => fail(`no ready line within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      const fail = (why: string) => {
        clearTimeout(timer);
        if (!ready) {
          proc.kill('SIGKILL');
          reject(new Error(`rank spawner ${path}: ${why}`));
        } else {
          helper.lost(why);
        }
      };
      proc.on('error', (err) => fail(err.message));
      proc.on('exit', (code, signal) => fail(`exited (${signal ?? `status ${code}`})`));
      proc.stdin!.on('error', () => undefined); // EPIPE: reported by 'exit'
      proc.stdout!.setEncoding('utf8');
      proc.stdout!.on('data', (chunk: string) => {
        if (!ready) {
          if (!chunk.startsWith('R gantry-spawn 1\n')) return fail(`unexpected greeting ${JSON.stringify(chunk.slice(0, 40))}`);
          ready = true;
          clearTimeout(timer);
          chunk = chunk.slice('R gantry-spawn 1\n'.length);
          resolve(helper);
        }
        helper.read(chunk);
      });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return !this.gone;
  }

  /**
   * Asks for a process; resolves once it has exec'd (its pid) or failed to (the errno's name).
   * `onExit` hears its end, unless the spawner is gone by then (see onGone).
   */
  spawn(req: SpawnRequest, onExit: ExitListener): Promise<SpawnOutcome> {
    if (this.gone) return Promise.resolve({ error: 'the rank spawner is gone' });
    const env = Object.entries(req.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
    const id = this.nextId++;
    const fields = [String(id), req.file, req.cwd, req.stdout, req.stderr, req.uid === undefined ? '' : String(req.uid), req.gid === undefined ? '' : String(req.gid),
      String(req.argv.length), ...req.argv, String(env.length), ...env];
    // A NUL would shift every later field (Node's own spawn refuses it too).
    if (fields.some((f) => f.includes('\0'))) return Promise.resolve({ error: 'EINVAL (a NUL byte in the command, environment or paths)' });
    const body = Buffer.from(`${fields.join('\0')}\0`);
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32LE(body.length, 0);
    body.copy(frame, 4);
    return new Promise((done) => {
      this.starts.set(id, { file: req.file, done, onExit });
      this.proc.stdin!.write(frame);
    });
  }

  /** Closes the spawner's input: it exits and leaves its children running. */
  stop(): void {
    this.gone = true;
    this.proc.stdin!.end();
  }

  private read(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      const [kind, a, b] = line.split(' ');
      const x = Number(a);
      const y = Number(b);
      if (kind === 'S' || kind === 'E') {
        const start = this.starts.get(x);
        if (!start) continue;
        this.starts.delete(x);
        if (kind === 'S') {
          this.exits.set(y, start.onExit);
          start.done({ pid: y });
        } else {
          start.done({ error: `spawn ${start.file} ${errnoNames.get(y) ?? `errno ${y}`}` });
        }
      } else if (kind === 'X') {
        const listener = this.exits.get(x);
        this.exits.delete(x);
        // Raw wait status: the low 7 bits are the signal, else the exit code is in the next 8.
        if ((y & 0x7f) === 0) listener?.((y >> 8) & 0xff, null);
        else listener?.(null, signalNames.get(y & 0x7f) ?? 'SIGKILL');
      } else {
        this.lost(`unexpected line ${JSON.stringify(line.slice(0, 60))}`);
        return;
      }
    }
  }

  private lost(why: string): void {
    if (this.gone && this.starts.size === 0) return;
    const wasStopped = this.gone;
    this.gone = true;
    // A start with no answer may or may not have happened: the runner records it as not started.
    for (const start of this.starts.values()) start.done({ error: `the rank spawner ended before answering (${why})` });
    this.starts.clear();
    this.exits.clear();
    if (!wasStopped) {
      this.log.error({ why }, 'rank spawner lost; ranks are started by the agent itself from now on');
      this.onGone(why);
    }
  }
}

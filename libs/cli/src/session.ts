// What every command needs: the process streams (injected, so main() runs in-process in tests),
// the global options, a lazily created SDK client, and the exit code to return.
import { readFileSync } from 'node:fs';
import { GantryClient, type TlsOptions } from '@gantry/sdk';
import { UsageError } from './errors.js';

export interface Output {
  write(chunk: string): unknown;
}

export interface Io {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  /** The clock for ages ("5m ago"); tests pin it. */
  now?: () => Date;
  /** The submitter's directory, where ranks start by default; process.cwd() when absent. */
  cwd?: string;
}

export interface GlobalOptions {
  addr?: string;
  output: 'table' | 'json';
  /** Per-call deadline in ms, already parsed. */
  timeout?: number;
  token?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
}

function readPem(path: string | undefined, what: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read ${what}: ${(err as Error).message}`);
  }
}

export class Session {
  exitCode = 0;
  private client: GantryClient | undefined;

  constructor(
    readonly io: Io,
    private readonly globals: () => GlobalOptions,
  ) {}

  get json(): boolean {
    return this.globals().output === 'json';
  }

  now(): Date {
    return this.io.now?.() ?? new Date();
  }

  cwd(): string {
    return this.io.cwd ?? process.cwd();
  }

  /** TLS from the global flags (--tls, --ca, --cert, --key); undefined when none is given. */
  tls(): TlsOptions | true | undefined {
    const g = this.globals();
    if (g.ca || g.cert || g.key) {
      const tls: TlsOptions = {};
      const ca = readPem(g.ca, 'CA certificate');
      const cert = readPem(g.cert, 'client certificate');
      const key = readPem(g.key, 'client key');
      if (ca) tls.ca = ca;
      if (cert) tls.cert = cert;
      if (key) tls.key = key;
      return tls;
    }
    return g.tls ? true : undefined;
  }

  /** The gateway client, created on first use from the global options. */
  gantry(): GantryClient {
    if (!this.client) {
      const g = this.globals();
      const tls = this.tls();
      this.client = new GantryClient({
        env: this.io.env,
        ...(g.addr !== undefined && { address: g.addr }),
        ...(g.timeout !== undefined && { timeoutMs: g.timeout }),
        ...(g.token !== undefined && { token: g.token }),
        ...(tls !== undefined && { tls }),
      });
    }
    return this.client;
  }

  /** Writes a line (or a block that already ends in a newline) to stdout. */
  out(text: string): void {
    this.io.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }

  err(text: string): void {
    this.io.stderr.write(text.endsWith('\n') ? text : text + '\n');
  }

  /** JSON output: pretty for one document, one compact line per item for streams. */
  printJson(value: unknown, { line = false } = {}): void {
    this.out(line ? JSON.stringify(value) : JSON.stringify(value, null, 2));
  }

  /** The gateway address, once a client was made. */
  get address(): string | undefined {
    return this.client?.options.address;
  }

  close(): void {
    this.client?.close();
  }
}

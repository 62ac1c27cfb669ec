// The local endpoint training code may call to report checkpoints explicitly (python/gantry_ckpt.py):
// loopback HTTP on the agent's host, answered only with the per-job token the rank got in
// GANTRY_CKPT_TOKEN (a bearer token; a rank of another job holds another token, and the
// endpoint listens on 127.0.0.1 only). Paths must lie inside the job's checkpoint directory.
//
//   POST /v1/checkpoints/begin   {"path": "/ckpt/job/step-100", "step": 100}
//        -> 200 {"status": "IN_PROGRESS"}: recorded IN_PROGRESS (WRITING) until complete
//   POST /v1/checkpoints/commit  {"path": ..., "step": 100, "checksums": false}
//        -> the layout check runs now (format from the job); 200 when COMPLETE (committed by
//           manifest), 409 with the reasons when INCOMPLETE or CORRUPT (recorded as such)
//
//   POST /v1/storage/acquire | renew | release
//        -> storage admission for the job's checkpoint directory ("may I write now?", "I am
//           done"), forwarded to the checkpoint service's StorageService (storage-route.ts);
//           501 with a clear message when this agent has no checkpoint service address
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { checkCheckpoint } from '@gantry/checkpoint-layouts';
import { CheckpointReport } from '@gantry/proto';
import type { CheckpointStateFile, TokenRecord } from './state.js';
import { OutsideError, confined, inside } from './confine.js';
import { isAbsolute, resolve } from 'node:path';
import { formatOption, toReport } from './report.js';
import { sendReport, type Publish } from './watcher.js';
import { StorageRoute, StorageRouteError } from './storage-route.js';

const MAX_BODY = 64 * 1024;

export interface EndpointDeps {
  node: string;
  state: CheckpointStateFile;
  publish: Publish;
  log: Logger;
  storage: StorageRoute;
}

class HttpError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export class CheckpointEndpoint {
  private server: Server | undefined;
  port = 0;

  constructor(private readonly deps: EndpointDeps) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on the port a previous agent used (ranks it started still have that URL), else any. */
  async start(): Promise<void> {
    const wanted = this.deps.state.state.port;
    const server = createServer((req, res) => void this.handle(req, res));
    const listen = (port: number) => new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    try {
      await listen(wanted);
    } catch (err) {
      if (wanted === 0) throw err;
      this.deps.log.warn({ port: wanted, err: (err as Error).message }, 'checkpoint endpoint port taken; ranks started before this restart cannot reach it');
      await listen(0);
    }
    this.server = server;
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    if (this.deps.state.state.port !== this.port) {
      this.deps.state.state.port = this.port;
      this.deps.state.save();
    }
    this.deps.log.info({ url: this.url }, 'checkpoint endpoint listening');
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private auth(req: IncomingMessage): TokenRecord {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer ([0-9a-f]{64})$/.exec(h);
    if (!m) throw new HttpError(401, 'missing or malformed bearer token (GANTRY_CKPT_TOKEN)');
    const given = Buffer.from(m[1]!, 'hex');
    for (const [token, rec] of Object.entries(this.deps.state.state.tokens)) {
      const t = Buffer.from(token, 'hex');
      if (t.length === given.length && timingSafeEqual(t, given)) return rec;
    }
    throw new HttpError(401, 'unknown token (revoked when the job left this node)');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== 'POST') throw new HttpError(405, 'POST only');
      const tok = this.auth(req);
      const body = await readBody(req);
      const route = (req.url ?? '').split('?')[0];
      if (route === '/v1/checkpoints/begin') return reply(res, 200, await this.report(tok, body, false));
      if (route === '/v1/checkpoints/commit') {
        const out = await this.report(tok, body, true);
        return reply(res, out.status === 'COMPLETE' ? 200 : 409, out);
      }
      if (route === '/v1/storage/acquire') return reply(res, 200, await this.deps.storage.acquire(tok, body));
      if (route === '/v1/storage/renew') return reply(res, 200, await this.deps.storage.renew(tok, body));
      if (route === '/v1/storage/release') return reply(res, 200, await this.deps.storage.release(tok, body));
      throw new HttpError(404, `no route ${route}`);
    } catch (err) {
      const code = err instanceof HttpError || err instanceof StorageRouteError ? err.code : err instanceof OutsideError ? 403 : 500;
      if (code === 500) this.deps.log.warn({ err: (err as Error).message }, 'checkpoint endpoint error');
      reply(res, code, { error: (err as Error).message });
    }
  }

  private async report(tok: TokenRecord, body: Record<string, unknown>, commit: boolean): Promise<Record<string, unknown>> {
    const path = body.path;
    if (typeof path !== 'string' || !path) throw new HttpError(400, 'path is required');
    const step = body.step;
    if (step !== undefined && !(typeof step === 'number' && Number.isSafeInteger(step) && step >= 0)) throw new HttpError(400, 'step must be a non-negative integer');
    if (commit || (await exists(path))) await confined(tok.dir, path);
    else if (!isAbsolute(path) || path.split('/').includes('..') || !inside(resolve(tok.dir), resolve(path))) throw new OutsideError(`${path} is not inside the job's checkpoint directory ${tok.dir}`);
    const reported = (this.deps.state.state.reported[tok.jobId] ??= {});
    if (typeof step === 'number') reported[path] = { ...(reported[path] ?? { digest: '', seq: 0 }), step };
    const ctx = { jobId: tok.jobId, attempt: tok.attempt, node: this.deps.node, dir: tok.dir, retention: tok.retention, source: 'explicit' as const, attemptEnded: false, ...(typeof step === 'number' && { step }) };
    let r: CheckpointReport;
    if (commit) {
      const found = await checkCheckpoint(path, formatOption(tok.format), { checksums: body.checksums === true });
      r = toReport({ ...found, path }, ctx);
    } else {
      r = CheckpointReport.create({ ...toReport({ format: 'dcp', path, name: path.split('/').pop() ?? '', step: null, status: 'INCOMPLETE', reasons: ['begun by the training code'], notes: [], latest: false, files: [], totalBytes: 0 }, ctx), format: 0 });
    }
    if ((await sendReport(r, this.deps, commit)) === 'failed') throw new HttpError(503, 'the report could not be sent to the control plane; try again');
    return { status: commit ? r.status : 'IN_PROGRESS', path, step: r.step ?? null, reasons: r.reasons, files: r.files.length, total_bytes: r.totalBytes };
  }
}

async function exists(path: string): Promise<boolean> {
  const { lstat } = await import('node:fs/promises');
  return lstat(path).then(() => true, () => false);
}

function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new HttpError(413, 'body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        resolve(v as Record<string, unknown>);
      } catch {
        reject(new HttpError(400, 'body must be a JSON object'));
      }
    });
    req.on('error', reject);
  });
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

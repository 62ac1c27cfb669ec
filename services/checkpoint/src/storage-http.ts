// The JSON/HTTP mapping of gantry.v1.StorageService, for clients without gRPC (shell scripts,
// other languages; the Python module and the agent use gRPC through the agent instead). It has
// no client authentication or TLS, so it is off unless STORAGE_HTTP_PORT is set. Bodies are the proto JSON of the gRPC messages (camelCase or snake_case field
// names; mode "write"/"read" or the enum name); errors are {"code": "NOT_FOUND", "message"}
// with the matching HTTP status. The contract is in docs/storage.md.
//
//   GET  /v1/storage/targets                 ListStorageTargetsResponse
//   GET  /v1/storage/targets/{name}          GetStorageTargetResponse
//   POST /v1/storage/leases:acquire          AcquireStorageLeaseRequest  -> ...Response
//   POST /v1/storage/leases:renew            RenewStorageLeaseRequest    -> ...Response (404 once gone)
//   POST /v1/storage/leases:release          ReleaseStorageLeaseRequest  -> ...Response
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { status } from '@grpc/grpc-js';
import {
  AcquireStorageLeaseRequest,
  AcquireStorageLeaseResponse,
  GetStorageTargetResponse,
  ListStorageTargetsResponse,
  ReleaseStorageLeaseRequest,
  ReleaseStorageLeaseResponse,
  RenewStorageLeaseRequest,
  RenewStorageLeaseResponse,
} from '@gantry/proto';
import type { Logger } from '@gantry/service-kit';
import type { StorageCalls } from './storage-service.js';

const HTTP_OF: Partial<Record<number, number>> = {
  [status.INVALID_ARGUMENT]: 400,
  [status.NOT_FOUND]: 404,
  [status.FAILED_PRECONDITION]: 409,
  [status.UNAVAILABLE]: 503,
};
const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(readonly http: number, readonly code: string, message: string) {
    super(message);
  }
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, 'INVALID_ARGUMENT', `body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return {};
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new HttpError(400, 'INVALID_ARGUMENT', `body is not a JSON object: ${(err as Error).message}`);
  }
}

/** "write"/"read" as well as the enum names. */
function withMode(o: Record<string, unknown>): Record<string, unknown> {
  const m = o.mode;
  if (m === 'write' || m === 'read') return { ...o, mode: m === 'write' ? 'STORAGE_LEASE_MODE_WRITE' : 'STORAGE_LEASE_MODE_READ' };
  return o;
}

/** snake_case holder fields as well (job_id), like the top-level fields the generated fromJSON accepts. */
function withHolder(o: Record<string, unknown>): Record<string, unknown> {
  const h = o.holder as Record<string, unknown> | undefined;
  if (h && typeof h === 'object' && h.jobId === undefined && h.job_id !== undefined) return { ...o, holder: { ...h, jobId: h.job_id } };
  return o;
}

export function serveStorageHttp(calls: StorageCalls, host: string, port: number, log: Logger): Server {
  const route = async (req: IncomingMessage, res: ServerResponse, cancelled: () => boolean): Promise<unknown> => {
    const url = new URL(req.url ?? '/', 'http://local');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/v1/storage/targets') return ListStorageTargetsResponse.toJSON(await calls.listStorageTargets({}));
    const one = /^\/v1\/storage\/targets\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && one) return GetStorageTargetResponse.toJSON(await calls.getStorageTarget({ name: decodeURIComponent(one[1]!) }));
    if (req.method === 'POST' && path === '/v1/storage/leases:acquire') {
      const r = AcquireStorageLeaseRequest.fromJSON(withHolder(withMode(await body(req))));
      return AcquireStorageLeaseResponse.toJSON(await calls.acquireStorageLease(r, cancelled));
    }
    if (req.method === 'POST' && path === '/v1/storage/leases:renew') {
      return RenewStorageLeaseResponse.toJSON(await calls.renewStorageLease(RenewStorageLeaseRequest.fromJSON(await body(req))));
    }
    if (req.method === 'POST' && path === '/v1/storage/leases:release') {
      return ReleaseStorageLeaseResponse.toJSON(await calls.releaseStorageLease(ReleaseStorageLeaseRequest.fromJSON(await body(req))));
    }
    void res;
    throw new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${path}`);
  };
  const server = createServer((req, res) => {
    let closed = false;
    res.on('close', () => (closed = true));
    route(req, res, () => closed).then(
      (out) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(out));
      },
      (err: unknown) => {
        let http = 500;
        let code = 'INTERNAL';
        const e = err as { code?: unknown; details?: unknown; message?: string };
        if (err instanceof HttpError) ({ http, code } = err);
        else if (typeof e.code === 'number') {
          http = HTTP_OF[e.code] ?? 500;
          code = status[e.code] ?? 'UNKNOWN';
        } else if (/fromJSON|Invalid value|Unrecognized/i.test(e.message ?? '')) {
          http = 400;
          code = 'INVALID_ARGUMENT';
        }
        if (http === 500) log.error({ err }, 'storage http handler failed');
        res.writeHead(http, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code, message: typeof e.details === 'string' && e.details ? e.details : e.message ?? String(err) }));
      },
    );
  });
  server.listen(port, host, () => {
    const a = server.address();
    log.info({ port: typeof a === 'object' && a ? a.port : port, host }, 'storage HTTP listening');
  });
  return server;
}

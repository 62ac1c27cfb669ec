// The gateway's read-only web status page (GATEWAY_STATUS_PORT): a static page and script, and
// one JSON endpoint the script polls. The page itself holds no data; every data request is
// authenticated and scoped like a gRPC call (see snapshot.ts and invoke.ts). HTTPS with the
// gateway's TLS certificate when it has one, and then client certificates are read too (mTLS).
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@gantry/service-kit';
import { CallError, httpStatus, type Caller } from './invoke.js';
import { snapshot, type SnapshotSources } from './snapshot.js';

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** Everything the page loads comes from here; no inline script or style, no frames, no other origin. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** A tenant name is short; anything longer is refused here, before any call. */
const MAX_TENANT_CHARS = 128;

export interface StatusPageOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  sources: SnapshotSources;
  log: Logger;
}

export interface StatusPage {
  port: number;
  close(): Promise<void>;
}

function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const dir = new URL('./assets/', import.meta.url);
  const files = new Map<string, Buffer>();
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const [path, a] of Object.entries(ASSETS)) {
    if (!files.has(a.file)) files.set(a.file, readFileSync(new URL(a.file, dir)));
    out.set(path, { body: files.get(a.file)!, type: a.type });
  }
  return out;
}

function send(res: ServerResponse, code: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(code, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store', ...extra });
  res.end(body);
}

function sendError(res: ServerResponse, code: number, message: string, extra: Record<string, string> = {}): void {
  send(res, code, 'application/json', JSON.stringify({ error: message }), extra);
}

function callerOf(req: IncomingMessage): Caller {
  const socket = req.socket as Partial<TLSSocket>;
  // Only a certificate the TLS handshake verified against TLS_CLIENT_CA_FILE identifies anyone.
  const cert = socket.authorized === true && socket.getPeerCertificate ? socket.getPeerCertificate() : undefined;
  return { authorization: req.headers.authorization, certificate: cert && Object.keys(cert).length > 0 ? cert : undefined, peer: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}` };
}

export async function startStatusPage(opts: StatusPageOptions): Promise<StatusPage> {
  const assets = loadAssets();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://status.invalid');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'the status page is read-only: GET only', { allow: 'GET, HEAD' });
    const asset = assets.get(url.pathname);
    if (asset) return send(res, 200, asset.type, asset.body, { 'cache-control': 'no-cache' });
    if (url.pathname !== '/api/snapshot') return sendError(res, 404, `no such page: ${url.pathname.slice(0, 100)}`);
    const tenant = url.searchParams.get('tenant') ?? '';
    if (tenant.length > MAX_TENANT_CHARS) return sendError(res, 400, `tenant must be at most ${MAX_TENANT_CHARS} characters`);
    snapshot(opts.sources, callerOf(req), tenant).then(
      (snap) => send(res, 200, 'application/json', JSON.stringify(snap)),
      (err: unknown) => {
        if (err instanceof CallError) {
          const code = httpStatus(err.code);
          return sendError(res, code, err.message, code === 401 ? { 'www-authenticate': 'Bearer realm="gantry"' } : {});
        }
        opts.log.error({ err }, 'status page: snapshot failed');
        sendError(res, 500, 'the status page could not gather its data; see the gateway log');
      },
    );
  };
  const server: Server = opts.tls
    ? createHttpsServer({
      cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile),
      ...(opts.tls.clientCaFile ? { ca: readFileSync(opts.tls.clientCaFile), requestCert: true, rejectUnauthorized: false } : {}),
    }, handle)
    : createHttpServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve(); });
  });
  await opts.sources.feed.start();
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => {
      opts.sources.feed.stop();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

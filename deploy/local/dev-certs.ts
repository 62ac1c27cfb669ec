// Dev mode of internal mutual TLS: a throw-away CA and one certificate per Gantry process,
// made with the openssl binary when the local stack or a test stack starts, so the services
// talk over mTLS on a developer's machine without any setup. Never for production: the CA key
// sits next to the certificates (docs/security.md says how to issue real ones).
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Processes that get a certificate; `client` is for the CLI, the SDK and tests. */
export const DEV_CERT_NAMES = ['gateway', 'scheduler', 'checkpoint', 'node-agent', 'client'] as const;
export type DevCertName = (typeof DEV_CERT_NAMES)[number];

export interface DevCertFiles {
  dir: string;
  ca: string;
  cert(name: DevCertName): string;
  key(name: DevCertName): string;
}

const DAYS = 30;
/** Certificates expiring sooner than this are made again. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('dev-mode internal TLS needs the openssl binary on PATH (or set GANTRY_INTERNAL_TLS=off)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? e.message}`);
  }
}

function fresh(path: string): boolean {
  if (!existsSync(path)) return false;
  try {
    return new Date(new X509Certificate(readFileSync(path)).validTo).getTime() - Date.now() > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

/**
 * A CA and a certificate per name in `dir` (made when missing or near expiry; kept otherwise,
 * so a restarted stack keeps its CA). Each certificate is valid for localhost, 127.0.0.1 and
 * ::1 as a server and as a client, and names its process as URI SAN spiffe://gantry/<name>.
 */
export function ensureDevCerts(dir: string): DevCertFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: DevCertFiles = { dir, ca: join(dir, 'ca.crt'), cert: (n) => join(dir, `${n}.crt`), key: (n) => join(dir, `${n}.key`) };
  const newCa = !fresh(files.ca);
  if (newCa) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
      '-days', String(DAYS + 30), '-subj', '/CN=gantry dev internal CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  }
  for (const name of DEV_CERT_NAMES) {
    if (!newCa && fresh(files.cert(name)) && existsSync(files.key(name))) continue;
    writeFileSync(join(dir, `${name}.ext`), [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,URI:spiffe://gantry/${name}`,
      '',
    ].join('\n'));
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=gantry ${name}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}${DEV_CERT_NAMES.indexOf(name)}`,
      '-days', String(DAYS), '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
    for (const scratch of [`${name}.csr`, `${name}.ext`]) rmSync(join(dir, scratch), { force: true });
  }
  return files;
}

/** The INTERNAL_TLS_* variables of process `name`. */
export function devTlsEnv(files: DevCertFiles, name: DevCertName): NodeJS.ProcessEnv {
  return { INTERNAL_TLS_CA_FILE: files.ca, INTERNAL_TLS_CERT_FILE: files.cert(name), INTERNAL_TLS_KEY_FILE: files.key(name) };
}

/** PEM contents for the SDK's `tls` option (a client certificate of the internal CA). */
export function devClientTls(files: DevCertFiles): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: readFileSync(files.ca), cert: readFileSync(files.cert('client')), key: readFileSync(files.key('client')) };
}

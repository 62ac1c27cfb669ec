// Internal traffic over mutual TLS: the gateway, the scheduler, the checkpoint service and the
// agents (where they call gRPC) each hold a certificate from one internal CA. Their gRPC servers
// ask every caller for a certificate and refuse one that does not chain to that CA (the TLS
// handshake fails, so no request is read); their clients present theirs and check the server's
// against the same CA and the address's host name. Configured by three variables, all or none,
// checked at start so a wrong path, a key that is not the certificate's, or a certificate the
// CA did not sign stops the process with the variable's name instead of failing every call.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from './config.js';

// The variables (internalTlsEnv) are in config.ts with the rest of commonEnv.
export interface InternalTlsConfig {
  INTERNAL_TLS_CA_FILE?: string | undefined;
  INTERNAL_TLS_CERT_FILE?: string | undefined;
  INTERNAL_TLS_KEY_FILE?: string | undefined;
  INTERNAL_TLS_SERVER_NAME?: string | undefined;
}

/** PEM contents of the internal CA and of this process's certificate and key. */
export interface InternalTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  serverName?: string;
}

const FILES = ['INTERNAL_TLS_CA_FILE', 'INTERNAL_TLS_CERT_FILE', 'INTERNAL_TLS_KEY_FILE'] as const;

function bad(name: string, problem: string): ConfigError {
  return new ConfigError(`invalid configuration: ${name}: ${problem}`);
}

function read(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(name, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function certificate(name: string, path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw bad(name, `${path} is not a PEM certificate`);
  }
}

/**
 * The internal TLS material of a loaded config, or undefined when none of the three files is
 * set (plaintext). Throws ConfigError naming the variable when only some are set, a file
 * cannot be read or parsed, the key is not the certificate's, the certificate is not signed by
 * the CA, or either is outside its validity period.
 */
export function internalTls(c: InternalTlsConfig, now = new Date()): InternalTls | undefined {
  const set = FILES.filter((n) => c[n]);
  if (set.length === 0) {
    if (c.INTERNAL_TLS_SERVER_NAME) throw bad('INTERNAL_TLS_SERVER_NAME', 'needs INTERNAL_TLS_CA_FILE, INTERNAL_TLS_CERT_FILE and INTERNAL_TLS_KEY_FILE');
    return undefined;
  }
  const missing = FILES.find((n) => !c[n]);
  if (missing) throw bad(missing, `required when ${set.join(' and ')} ${set.length === 1 ? 'is' : 'are'} set (internal mutual TLS needs all three)`);
  const [caPath, certPath, keyPath] = FILES.map((n) => c[n]!) as [string, string, string];
  const ca = read('INTERNAL_TLS_CA_FILE', caPath);
  const cert = read('INTERNAL_TLS_CERT_FILE', certPath);
  const key = read('INTERNAL_TLS_KEY_FILE', keyPath);
  // During a CA rotation the file holds the old and the new CA: every one must be a CA.
  const cas = pemBlocks(ca).map((pem) => certificate('INTERNAL_TLS_CA_FILE', caPath, Buffer.from(pem)));
  if (cas.length === 0) throw bad('INTERNAL_TLS_CA_FILE', `${caPath} is not a PEM certificate`);
  if (cas.some((c) => !c.ca)) throw bad('INTERNAL_TLS_CA_FILE', `${caPath} is not a CA certificate (basicConstraints CA:TRUE)`);
  const own = certificate('INTERNAL_TLS_CERT_FILE', certPath, cert);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw bad('INTERNAL_TLS_KEY_FILE', `${keyPath} is not an unencrypted PEM private key`);
  }
  if (!own.checkPrivateKey(privateKey)) throw bad('INTERNAL_TLS_KEY_FILE', `${keyPath} is not the key of ${certPath}`);
  // The first certificate of a chain file is this process's; an intermediate may follow it.
  if (!cas.some((caCert) => (own.checkIssued(caCert) && own.verify(caCert.publicKey)) || chainedThroughFile(cert, caCert))) throw bad('INTERNAL_TLS_CERT_FILE', `${certPath} (${own.subject.replace(/\n/g, ', ')}) is not signed by ${cas.length > 1 ? 'any CA' : 'the CA'} in ${caPath}`);
  for (const [name, path, x] of [...cas.map((c) => ['INTERNAL_TLS_CA_FILE', caPath, c] as const), ['INTERNAL_TLS_CERT_FILE', certPath, own] as const]) {
    if (new Date(x.validTo) < now) throw bad(name, `${path} expired on ${new Date(x.validTo).toISOString()}`);
    if (new Date(x.validFrom) > now) throw bad(name, `${path} is not valid before ${new Date(x.validFrom).toISOString()}`);
  }
  return { ca, cert, key, ...(c.INTERNAL_TLS_SERVER_NAME ? { serverName: c.INTERNAL_TLS_SERVER_NAME } : {}) };
}

function pemBlocks(file: Buffer): string[] {
  return file.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Whether the last certificate of a chain file was issued by the CA (leaf, intermediates…). */
function chainedThroughFile(chain: Buffer, ca: X509Certificate): boolean {
  const pems = pemBlocks(chain);
  if (pems.length < 2) return false;
  const certs = pems.map((p) => new X509Certificate(p));
  for (let i = 0; i + 1 < certs.length; i++) if (!certs[i]!.checkIssued(certs[i + 1]!) || !certs[i]!.verify(certs[i + 1]!.publicKey)) return false;
  const last = certs[certs.length - 1]!;
  return last.checkIssued(ca) && last.verify(ca.publicKey);
}

/** Server side: a certificate is required from every caller, and must chain to the internal CA. */
export function internalServerCredentials(tls: InternalTls): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** Client side: plaintext without internal TLS, else this process's certificate, checking the server's. */
export function internalChannelCredentials(tls: InternalTls | undefined): grpc.ChannelCredentials {
  return tls ? grpc.credentials.createSsl(tls.ca, tls.key, tls.cert) : grpc.credentials.createInsecure();
}

/** Channel options that go with internalChannelCredentials (the server name override, if any). */
export function internalChannelOptions(tls: InternalTls | undefined): grpc.ChannelOptions {
  return tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {};
}

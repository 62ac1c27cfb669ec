// Client options: what callers may set, and `addDefaults`, which fills in the rest in one
// place (environment first, then built-in defaults) so every client behaves the same.
import { credentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
import type { GantryError } from './errors.js';
import { loadConfigFile } from './config-file.js';

export const DEFAULT_ADDRESS = '127.0.0.1:7070';
export const DEFAULT_TIMEOUT_MS = 10_000;

/** PEM contents (not paths). `true` instead of an object means TLS with the system roots. */
export interface TlsOptions {
  /** Root certificates to trust; the system roots when absent. */
  ca?: Buffer | string;
  /** Client certificate chain and key, for mutual TLS. */
  cert?: Buffer | string;
  key?: Buffer | string;
}

export interface ClientOptions {
  /** host:port. Default: `$GANTRY_ADDR`, else 127.0.0.1:7070. */
  address?: string;
  /** Deadline of each attempt of a unary call, in ms. Default 10 s. Streams have none. */
  timeoutMs?: number;
  /** Retry policy for retryable unary calls; `false` disables retries. */
  retry?: Partial<RetryPolicy> | false;
  /** TLS; plaintext when absent. */
  tls?: TlsOptions | true;
  /** Sent as `authorization: Bearer <token>` on every call. Default: `$GANTRY_TOKEN`. */
  token?: string;
  /** Extra metadata sent on every call. */
  metadata?: Record<string, string>;
  /** Raw grpc-js channel options (keepalive, message sizes, ...). */
  channelOptions?: ChannelOptions;
  /** Called before each retry; e.g. to log. */
  onRetry?: (err: GantryError, attempt: number, delayMs: number) => void;
  /**
   * The client config file (address, token or tokenFile, tls: see config-file.ts), below
   * options and environment in precedence. Default: $GANTRY_CONFIG, else
   * ~/.config/gantry/config.yaml when it exists; `false` reads none.
   */
  configFile?: string | false;
  /** Where defaults are read from; `process.env` when absent (tests pass their own). */
  env?: Record<string, string | undefined>;
}

export interface ResolvedClientOptions {
  address: string;
  timeoutMs: number;
  retry: RetryPolicy;
  credentials: ChannelCredentials;
  metadata: Record<string, string>;
  channelOptions: ChannelOptions;
  onRetry: ((err: GantryError, attempt: number, delayMs: number) => void) | undefined;
}

const pem = (v: Buffer | string | undefined): Buffer | null => (v === undefined ? null : Buffer.from(v));

export function channelCredentials(tls: TlsOptions | true | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

export function addDefaults(options: ClientOptions = {}): ResolvedClientOptions {
  const env = options.env ?? process.env;
  const file = options.configFile === false ? undefined : loadConfigFile(env, options.configFile);
  const token = options.token ?? (env['GANTRY_TOKEN'] || file?.token);
  return {
    address: options.address || env['GANTRY_ADDR'] || file?.address || DEFAULT_ADDRESS,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    retry: options.retry === false ? { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 } : { ...DEFAULT_RETRY_POLICY, ...options.retry },
    credentials: channelCredentials(options.tls ?? file?.tls),
    metadata: { ...options.metadata, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    channelOptions: options.channelOptions ?? {},
    onRetry: options.onRetry,
  };
}

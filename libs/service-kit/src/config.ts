// Service configuration comes from environment variables, validated once at start-up. A bad
// value stops the process with one line that names the variable, before anything connects.
import { existsSync } from 'node:fs';
import { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses `env` with a zod object whose keys are the variable names. */
export function loadConfig<S extends z.ZodRawShape>(shape: S, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join('.');
    const raw = env[name];
    const got = raw === undefined ? 'it is not set' : `got ${JSON.stringify(raw)}`;
    return `${name}: ${issue.message} (${got})`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}

/** Building blocks for the env schemas of the services, so every service spells them alike. */
export const env = {
  port: (def: number) => z.coerce.number().int().min(0).max(65535).default(def),
  url: (def?: string) => (def === undefined ? z.string().url() : z.string().url().default(def)),
  ms: (def: number) => z.coerce.number().int().min(1).default(def),
  int: (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def),
  str: (def?: string) => (def === undefined ? z.string().min(1) : z.string().min(1).default(def)),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  host: (def: string) => z.string().min(1).default(def),
};

/** TLS for a service's gRPC endpoint: both files or neither; a client CA turns on mutual TLS. */
export const tlsEnv = {
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
};

export function tlsFiles(c: { TLS_CERT_FILE?: string; TLS_KEY_FILE?: string; TLS_CLIENT_CA_FILE?: string }): { certFile: string; keyFile: string; clientCaFile?: string } | undefined {
  if (!c.TLS_CERT_FILE && !c.TLS_KEY_FILE) {
    if (c.TLS_CLIENT_CA_FILE) throw new ConfigError('invalid configuration: TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE');
    return undefined;
  }
  if (!c.TLS_CERT_FILE || !c.TLS_KEY_FILE) throw new ConfigError(`invalid configuration: ${c.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'}: required when ${c.TLS_CERT_FILE ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'} is set`);
  for (const [name, path] of Object.entries({ TLS_CERT_FILE: c.TLS_CERT_FILE, TLS_KEY_FILE: c.TLS_KEY_FILE, TLS_CLIENT_CA_FILE: c.TLS_CLIENT_CA_FILE })) {
    if (path && !existsSync(path)) throw new ConfigError(`invalid configuration: ${name}: file ${path} does not exist`);
  }
  return { certFile: c.TLS_CERT_FILE, keyFile: c.TLS_KEY_FILE, clientCaFile: c.TLS_CLIENT_CA_FILE };
}

/** Shared by every control-plane service. */
export const commonEnv = {
  LOG_LEVEL: env.logLevel(),
  NATS_URL: env.str('nats://127.0.0.1:4222'),
  REDIS_URL: env.str('redis://127.0.0.1:6379'),
  METRICS_PORT: env.port(0),
  BIND_HOST: env.host('127.0.0.1'),
};

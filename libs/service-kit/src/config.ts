// Service configuration comes from environment variables, validated once at start-up. A bad
// value stops the process with one line that names the variable, before anything connects.
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

/** Shared by every control-plane service. */
export const commonEnv = {
  LOG_LEVEL: env.logLevel(),
  NATS_URL: env.str('nats://127.0.0.1:4222'),
  REDIS_URL: env.str('redis://127.0.0.1:6379'),
  METRICS_PORT: env.port(0),
  BIND_HOST: env.host('127.0.0.1'),
};

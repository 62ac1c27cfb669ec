// The gateway's auth settings from environment variables, checked at start: a bad value stops
// the gateway with one line naming the variable.
import { AuthConfigError } from './errors.js';
import { parseRateLimit, type RateLimit } from './rate-limit.js';

export type AuthMode = 'token' | 'mtls';

export interface AuthSettings {
  /** Empty = off: every caller is an anonymous admin (local development only). */
  modes: AuthMode[];
  jwt?: { keysFile: string; issuer: string; audience: string; rolesClaim: string; tenantsClaim: string; clockToleranceSec: number };
  policyFile?: string;
  rateLimit: RateLimit | 'off';
}

type Env = Record<string, string | undefined>;

const CLAIM = /^[A-Za-z0-9_:.\/-]{1,128}$/;

export function authSettingsFromEnv(env: Env = process.env): AuthSettings {
  const raw = (env['GATEWAY_AUTH'] ?? 'off').trim();
  const parts = raw.split(',').map((s) => s.trim());
  let modes: AuthMode[];
  if (raw === 'off') modes = [];
  else if (parts.every((p) => p === 'token' || p === 'mtls') && new Set(parts).size === parts.length) modes = parts as AuthMode[];
  else throw new AuthConfigError('GATEWAY_AUTH', `must be off, token, mtls or token,mtls (got ${JSON.stringify(raw.slice(0, 40))})`);

  const settings: AuthSettings = { modes, rateLimit: 'off' };
  if (modes.includes('token')) {
    const need = (name: string): string => {
      const v = env[name]?.trim();
      if (!v) throw new AuthConfigError(name, `required when GATEWAY_AUTH includes token (it is not set)`);
      return v;
    };
    const claim = (name: string, def: string): string => {
      const v = env[name]?.trim() || def;
      if (!CLAIM.test(v)) throw new AuthConfigError(name, `must be a claim name (got ${JSON.stringify(v.slice(0, 40))})`);
      return v;
    };
    const skew = Number(env['GATEWAY_JWT_CLOCK_SKEW_SEC'] ?? '30');
    if (!Number.isInteger(skew) || skew < 0 || skew > 600) throw new AuthConfigError('GATEWAY_JWT_CLOCK_SKEW_SEC', 'must be an integer between 0 and 600');
    settings.jwt = {
      keysFile: need('GATEWAY_JWT_KEYS_FILE'),
      issuer: need('GATEWAY_JWT_ISSUER'),
      audience: env['GATEWAY_JWT_AUDIENCE']?.trim() || 'gantry',
      rolesClaim: claim('GATEWAY_JWT_ROLES_CLAIM', 'roles'),
      tenantsClaim: claim('GATEWAY_JWT_TENANTS_CLAIM', 'tenants'),
      clockToleranceSec: skew,
    };
  }
  const policy = env['GATEWAY_AUTH_POLICY_FILE']?.trim();
  if (policy) settings.policyFile = policy;
  else if (modes.includes('mtls')) throw new AuthConfigError('GATEWAY_AUTH_POLICY_FILE', 'required when GATEWAY_AUTH includes mtls (it maps certificate identities to roles and tenants)');

  const rate = env['GATEWAY_RATE_LIMIT']?.trim() || (modes.length > 0 ? '50/100' : 'off');
  const parsed = parseRateLimit(rate);
  if (typeof parsed === 'string' && parsed !== 'off') throw new AuthConfigError('GATEWAY_RATE_LIMIT', `${parsed} (got ${JSON.stringify(rate.slice(0, 40))})`);
  settings.rateLimit = parsed as RateLimit | 'off';
  return settings;
}

// Who is calling: the principal the gateway authenticated, and what it may do.

export const ROLES = ['admin', 'operator', 'user'] as const;
export type Role = (typeof ROLES)[number];

/** Every tenant: for admins and cluster-wide service accounts. */
export const ALL_TENANTS = '*';

export type AuthMethod = 'token' | 'mtls' | 'none';

export interface Principal {
  /** A token's `sub`, or the identity (SAN) of a client certificate. */
  subject: string;
  roles: Role[];
  /** Tenants the principal acts for; `*` = every tenant. */
  tenants: string[];
  method: AuthMethod;
  /** A token's expiry. */
  expiresAt?: Date;
}

/** With GATEWAY_AUTH=off every caller is this: an admin of every tenant (the behaviour before auth). */
export const ANONYMOUS_ADMIN: Principal = Object.freeze({ subject: 'anonymous', roles: ['admin'], tenants: [ALL_TENANTS], method: 'none' }) as Principal;

/** admin > operator > user: a role includes the ones below it. */
const RANK: Record<Role, number> = { user: 1, operator: 2, admin: 3 };

export function hasRole(p: Principal, role: Role): boolean {
  return p.roles.some((r) => RANK[r] >= RANK[role]);
}

export function isAdmin(p: Principal): boolean {
  return p.roles.includes('admin');
}

/** Whether the principal may act on `tenant`'s jobs (admins: every tenant). */
export function inTenant(p: Principal, tenant: string): boolean {
  return isAdmin(p) || p.tenants.includes(ALL_TENANTS) || p.tenants.includes(tenant);
}

/**
 * Whether the principal may see secrets of `tenant`'s jobs (their env): admins and principals
 * that name the tenant itself; a wildcard tenant grant alone is not enough.
 */
export function seesSecretsOf(p: Principal, tenant: string): boolean {
  return isAdmin(p) || p.tenants.includes(tenant);
}

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

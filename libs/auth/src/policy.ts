// The gateway's auth policy file (GATEWAY_AUTH_POLICY_FILE, YAML or JSON):
//
//   principals:                      # client-certificate identities (SAN) -> roles and tenants
//     "spiffe://gantry/ops/alice": { roles: [operator], tenants: ["*"] }
//     "bob@example.com":           { roles: [user], tenants: [ml-research] }
//   tenants:                         # priority classes a tenant's users may submit with
//     ml-research: { priorityClasses: [low, normal, high] }
//
// Tenants themselves (which exist) come from the scheduling policy; this file only narrows
// what their users may do. `critical` is for operators and admins whatever it says.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { PRIORITY_CLASS_NAMES } from '@gantry/proto';
import { AuthConfigError } from './errors.js';
import { ALL_TENANTS, isRole, type Role } from './principal.js';

export interface Grant {
  roles: Role[];
  tenants: string[];
}

export interface AuthPolicy {
  principals: Map<string, Grant>;
  /** Per tenant: the priority classes its users may use; absent = every class but critical. */
  tenantPriorityClasses: Map<string, string[]>;
}

export const EMPTY_POLICY: AuthPolicy = { principals: new Map(), tenantPriorityClasses: new Map() };

/** Classes a user may use in a tenant the policy does not mention. */
export const DEFAULT_USER_PRIORITY_CLASSES: readonly string[] = PRIORITY_CLASS_NAMES.filter((c) => c !== 'critical');

const TENANT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function parseAuthPolicy(text: string, source: string, variable = 'GATEWAY_AUTH_POLICY_FILE'): AuthPolicy {
  let doc: unknown;
  try { doc = parseYaml(text); } catch (err) { throw new AuthConfigError(variable, `${source} is not YAML/JSON: ${(err as Error).message}`); }
  doc ??= {};
  const problems: string[] = [];
  const policy: AuthPolicy = { principals: new Map(), tenantPriorityClasses: new Map() };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new AuthConfigError(variable, `${source} must be a mapping with "principals" and/or "tenants"`);
  const root = doc as Record<string, unknown>;
  for (const k of Object.keys(root)) if (k !== 'principals' && k !== 'tenants') problems.push(`unknown key "${k}" (known: principals, tenants)`);
  const principals = (root['principals'] ?? {}) as Record<string, unknown>;
  for (const [identity, g] of Object.entries(principals)) {
    const grant = (g ?? {}) as { roles?: unknown; tenants?: unknown };
    const roles = Array.isArray(grant.roles) ? grant.roles : [];
    const tenants = Array.isArray(grant.tenants) ? grant.tenants : [];
    const badRoles = roles.filter((r) => !isRole(r));
    if (badRoles.length > 0) problems.push(`principals.${identity}.roles: unknown roles ${JSON.stringify(badRoles)} (known: admin, operator, user)`);
    const badTenants = tenants.filter((t) => typeof t !== 'string' || (t !== ALL_TENANTS && !TENANT.test(t)));
    if (badTenants.length > 0) problems.push(`principals.${identity}.tenants: invalid tenant names ${JSON.stringify(badTenants)}`);
    policy.principals.set(identity, { roles: roles.filter(isRole), tenants: tenants.filter((t): t is string => typeof t === 'string') });
  }
  const tenants = (root['tenants'] ?? {}) as Record<string, unknown>;
  for (const [tenant, t] of Object.entries(tenants)) {
    const classes = ((t ?? {}) as { priorityClasses?: unknown }).priorityClasses;
    if (!Array.isArray(classes)) { problems.push(`tenants.${tenant}.priorityClasses: expected a list of priority classes`); continue; }
    const bad = classes.filter((c) => !(PRIORITY_CLASS_NAMES as readonly unknown[]).includes(c));
    if (bad.length > 0) problems.push(`tenants.${tenant}.priorityClasses: unknown classes ${JSON.stringify(bad)} (known: ${PRIORITY_CLASS_NAMES.join(', ')})`);
    policy.tenantPriorityClasses.set(tenant, classes.filter((c): c is string => typeof c === 'string'));
  }
  if (problems.length > 0) throw new AuthConfigError(variable, `${source}: ${problems.join('; ')}`);
  return policy;
}

export function loadAuthPolicy(file: string | undefined, variable = 'GATEWAY_AUTH_POLICY_FILE'): AuthPolicy {
  if (!file) return EMPTY_POLICY;
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (err) { throw new AuthConfigError(variable, `cannot read ${file}: ${(err as Error).message}`); }
  return parseAuthPolicy(text, file, variable);
}

/** The priority classes a user of `tenant` may submit with. */
export function userPriorityClasses(policy: AuthPolicy, tenant: string): readonly string[] {
  return (policy.tenantPriorityClasses.get(tenant) ?? DEFAULT_USER_PRIORITY_CLASSES).filter((c) => c !== 'critical');
}

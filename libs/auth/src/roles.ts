// The method -> access table, in one place. Every method a gateway serves must be listed;
// a method that is not is refused (fail closed), and `assertEveryMethodListed` stops the
// gateway at start when a service gains a method nobody classified.
import type { Role } from './principal.js';

/**
 * - `role`: the principal needs at least this role (admin > operator > user);
 * - `tenant`: a user (or above) acting within its tenants, checked per job by the handler;
 * - `authenticated`: any authenticated principal, even without a role.
 */
export type Access = { kind: 'role'; role: Role } | { kind: 'tenant' } | { kind: 'authenticated' };

const admin: Access = { kind: 'role', role: 'admin' };
const operator: Access = { kind: 'role', role: 'operator' };
const reader: Access = { kind: 'role', role: 'user' };
const tenant: Access = { kind: 'tenant' };
const anyone: Access = { kind: 'authenticated' };

export interface MethodRule {
  access: Access;
  /** Mutating calls are written to the audit stream, whatever their outcome. */
  mutating: boolean;
}

const rule = (access: Access, mutating = false): MethodRule => ({ access, mutating });

/** Keys are `package.Service/Method`, as in the gRPC path. */
export const METHOD_RULES: Readonly<Record<string, MethodRule>> = Object.freeze({
  'gantry.v1.JobService/SubmitJob': rule(tenant, true),
  'gantry.v1.JobService/SubmitJobs': rule(tenant, true),
  'gantry.v1.JobService/GetJob': rule(tenant),
  'gantry.v1.JobService/ListJobs': rule(tenant),
  'gantry.v1.JobService/CancelJob': rule(tenant, true),
  'gantry.v1.JobService/WatchJob': rule(tenant),
  'gantry.v1.JobService/StreamLogs': rule(tenant),
  'gantry.v1.JobService/ExplainJob': rule(tenant),
  'gantry.v1.JobService/RetryJob': rule(tenant, true),

  'gantry.v1.NodeService/ListNodes': rule(reader),
  'gantry.v1.NodeService/GetNode': rule(reader),
  'gantry.v1.NodeService/GetNodeTelemetry': rule(reader),
  'gantry.v1.NodeService/ListNodeEvents': rule(reader),
  'gantry.v1.NodeService/ExplainNode': rule(reader),
  'gantry.v1.NodeService/GetClusterHealth': rule(reader),

  'gantry.v1.AdminService/GetSchedulingConfig': rule(admin),
  'gantry.v1.AdminService/SetSchedulingConfig': rule(admin, true),
  'gantry.v1.AdminService/GetHealthConfig': rule(admin),
  'gantry.v1.AdminService/SetHealthConfig': rule(admin, true),
  'gantry.v1.AdminService/OperateNode': rule(operator, true),
  'gantry.v1.AdminService/GetClusterStatus': rule(operator),
  'gantry.v1.AdminService/GetOperationsReport': rule(operator),

  'gantry.v1.AuthService/WhoAmI': rule(anyone),
  'gantry.v1.AuthService/ListAuditEvents': rule(admin),
});

export function methodRule(path: string): MethodRule | undefined {
  return Object.hasOwn(METHOD_RULES, path) ? METHOD_RULES[path] : undefined;
}

/** `definitions` are grpc-js service definitions; throws naming every method without a rule. */
export function assertEveryMethodListed(definitions: Record<string, { path: string }>[]): void {
  const missing = definitions.flatMap((d) => Object.values(d).map((m) => m.path.slice(1))).filter((p) => !methodRule(p));
  if (missing.length > 0) throw new Error(`methods without an access rule in @gantry/auth METHOD_RULES: ${missing.join(', ')}`);
}

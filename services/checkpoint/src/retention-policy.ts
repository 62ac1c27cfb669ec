// Retention policies per tenant (issue 11): CHECKPOINT_RETENTION_POLICIES is a JSON object from
// tenant name to policy, "*" for every tenant not listed:
//
//   {"ml-research": {"keepLast": 3, "keepEvery": 1000, "gcGraceSeconds": 3600, "delete": true},
//    "*": {"keepLast": 5}}
//
// A job's own policy (JobSpec.checkpoint.retention) overrides its tenant's as a whole; a job
// without one gets its tenant's, else "*", else none (keep every committed checkpoint, GC
// CORRUPT/ABANDONED after the default grace as a dry run). Fields as CheckpointRetention:
// keepLast (0 = keep all committed), keepEvery (also keep steps that are multiples of N),
// gcGraceSeconds (0 = default 1 h), delete (false = dry run, the default).
import { z } from 'zod';
import { CheckpointRetention } from '@gantry/proto';

const policy = z.object({
  keepLast: z.number().int().min(0).max(1_000_000).default(0),
  keepEvery: z.number().int().min(0).default(0),
  gcGraceSeconds: z.number().int().min(0).max(365 * 24 * 3600).default(0),
  delete: z.boolean().default(false),
}).strict();

const TENANT = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$/;

export type RetentionPolicies = ReadonlyMap<string, CheckpointRetention>;

/** Parses the variable's JSON; throws an Error whose message names the tenant and the field. */
export function parseRetentionPolicies(json: string): RetentionPolicies {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('must be a JSON object from tenant name (or "*") to policy');
  const out = new Map<string, CheckpointRetention>();
  for (const [tenant, value] of Object.entries(doc)) {
    if (!TENANT.test(tenant)) throw new Error(`tenant ${JSON.stringify(tenant)}: not a tenant name or "*"`);
    const r = policy.safeParse(value);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new Error(`tenant ${JSON.stringify(tenant)}${i.path.length ? `, ${i.path.join('.')}` : ''}: ${i.message}`);
    }
    out.set(tenant, CheckpointRetention.create(r.data));
  }
  return out;
}

/** The zod type of the variable (for loadConfig): parsed and checked at start-up. */
export const retentionPoliciesEnv = z.string().default('{}').transform((v, ctx): RetentionPolicies => {
  try {
    return parseRetentionPolicies(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export interface EffectivePolicy {
  policy: CheckpointRetention | undefined;
  /** 'job', 'tenant <name>', 'default (*)' or 'none'. */
  source: string;
}

/** The policy that applies to a job: its own, else its tenant's, else "*", else none. */
export function effectivePolicy(job: CheckpointRetention | undefined, tenant: string | undefined, policies: RetentionPolicies): EffectivePolicy {
  if (job) return { policy: job, source: 'job' };
  const t = tenant ? policies.get(tenant) : undefined;
  if (t) return { policy: t, source: `tenant ${tenant}` };
  const d = policies.get('*');
  if (d) return { policy: d, source: 'default (*)' };
  return { policy: undefined, source: 'none' };
}

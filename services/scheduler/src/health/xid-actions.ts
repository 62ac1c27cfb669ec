// XID policy as data: for each XID, what node health does about it. Seeded from the XID
// catalogue's immediate actions (services/node-agent/src/collectors/xid/xid-catalog.csv;
// test/health/xid-actions.test.ts fails if the two drift) and from operators' practice as
// recorded in the 504-GPU report: 31/43/94 restart the application without blaming the node;
// 119/145/149 reset the GPU; 79 reboots; 48, 63/64 with a remapping failure, 74, 95 and 140
// quarantine. The health config overrides any entry (HealthConfig.xid.policy), so an
// operator changes an action without a release.

export const XID_ACTIONS = ['ignore', 'warn', 'restart-app', 'drain-after-job', 'quarantine-now', 'reset-gpu', 'reboot'] as const;
export type XidAction = (typeof XID_ACTIONS)[number];

export interface XidPolicyEntry {
  action: XidAction;
  /** NVLink5 XIDs (144-150) say Fatal or Nonfatal; this applies to Nonfatal ones. */
  nonfatalAction?: XidAction;
  /** Applies instead when the GPU reports a row-remapping failure (63 "with failure"). */
  remapFailureAction?: XidAction;
  /**
   * `count` of this XID on the same GPU within `withinSec` escalate to `action`: the
   * catalogue's "if it repeats on the same GPU across different jobs suspect hardware".
   */
  repeat?: { count: number; withinSec: number; action: XidAction };
}

/** How strongly an action holds the node: what the node's status must be at least. */
export const ACTION_RANK: Readonly<Record<XidAction, number>> = {
  ignore: 0, 'restart-app': 0, warn: 1, 'drain-after-job': 2, 'reset-gpu': 3, reboot: 4, 'quarantine-now': 5,
};

/** Rank from which an action takes the node out of service at once (QUARANTINED until remediated). */
export const QUARANTINE_RANK = 3;

/** Actions that take the node out of service until someone remediates or releases it. */
export function isHardAction(a: XidAction): boolean {
  return ACTION_RANK[a] >= 2;
}

const DAY = 86_400;
const appRepeat = { count: 3, withinSec: DAY, action: 'drain-after-job' as const };

/**
 * The seeded policy. Catalogue immediate action → health action: RESTART_APP → restart-app,
 * RESET_GPU → reset-gpu, RESTART_BM → reboot, IGNORE → ignore ("log only") or warn ("track",
 * "watch for repeats", "alert on trend"), WORKFLOW_* → the workflow's end state. Then the
 * operators' overrides named above.
 */
export const DEFAULT_XID_POLICY: Readonly<Record<number, XidPolicyEntry>> = {
  8: { action: 'restart-app', repeat: appRepeat },
  11: { action: 'restart-app' },
  13: { action: 'restart-app', repeat: appRepeat },
  25: { action: 'restart-app' },
  31: { action: 'restart-app', repeat: appRepeat },
  32: { action: 'restart-app' },
  37: { action: 'ignore' },
  38: { action: 'ignore' },
  39: { action: 'restart-app' },
  // Usually the echo of an earlier fault (the app was killed): never blame the node for it.
  43: { action: 'restart-app' },
  44: { action: 'warn' },
  // A symptom: the XID it follows carries the action.
  45: { action: 'ignore' },
  46: { action: 'reset-gpu' },
  48: { action: 'quarantine-now' },
  54: { action: 'quarantine-now' },
  60: { action: 'restart-app' },
  62: { action: 'reset-gpu' },
  // A row was remapped (takes effect at reset): normal wear, tracked by the remapped-row
  // signals (growth, pending), not scored twice; with a remapping failure, quarantine.
  63: { action: 'ignore', remapFailureAction: 'quarantine-now' },
  64: { action: 'quarantine-now' },
  66: { action: 'ignore' },
  68: { action: 'restart-app' },
  69: { action: 'restart-app' },
  74: { action: 'quarantine-now' },
  78: { action: 'drain-after-job' },
  79: { action: 'reboot' },
  80: { action: 'restart-app' },
  92: { action: 'warn' },
  93: { action: 'ignore' },
  // Contained: only the application on that GPU was hit; the GPU is reusable.
  94: { action: 'restart-app', repeat: appRepeat },
  95: { action: 'quarantine-now' },
  109: { action: 'reset-gpu' },
  110: { action: 'reset-gpu' },
  119: { action: 'reset-gpu', repeat: { count: 2, withinSec: 7 * DAY, action: 'quarantine-now' } },
  120: { action: 'reset-gpu' },
  121: { action: 'warn' },
  136: { action: 'reset-gpu' },
  137: { action: 'warn' },
  140: { action: 'quarantine-now' },
  143: { action: 'reset-gpu' },
  144: { action: 'quarantine-now', nonfatalAction: 'warn' },
  145: { action: 'reset-gpu', nonfatalAction: 'warn' },
  146: { action: 'quarantine-now', nonfatalAction: 'warn' },
  147: { action: 'quarantine-now', nonfatalAction: 'warn' },
  148: { action: 'quarantine-now', nonfatalAction: 'warn' },
  149: { action: 'reset-gpu', nonfatalAction: 'warn' },
  150: { action: 'quarantine-now', nonfatalAction: 'warn' },
  154: { action: 'warn' },
  155: { action: 'reset-gpu' },
  // A retirement waiting for a reset: reset once the running job is done.
  156: { action: 'drain-after-job' },
  157: { action: 'warn' },
  158: { action: 'reset-gpu' },
};

export interface XidFacts {
  xid: number;
  /** NVLink5: Fatal (true) / Nonfatal (false) / not said. */
  fatal?: boolean;
}

export interface XidContext {
  /** The GPU currently reports remapped_rows_failure. */
  remapFailure: boolean;
  /** Earlier occurrences of this XID on the same GPU within the entry's repeat window. */
  earlierOnGpu: number;
}

export interface XidDecision {
  action: XidAction;
  /** Why, for the node's reasons and `node explain`. */
  rule: string;
}

/** The action for one XID under a policy; `unknown` covers XIDs the policy does not list. */
export function decideXid(
  x: XidFacts,
  policy: Readonly<Record<number, XidPolicyEntry>>,
  unknown: XidAction,
  ctx: XidContext,
): XidDecision {
  const entry = policy[x.xid];
  if (!entry) return { action: unknown, rule: `XID ${x.xid} is not in the policy` };
  let action = entry.action;
  let rule = `XID ${x.xid}: ${action}`;
  if (x.fatal === false && entry.nonfatalAction !== undefined) {
    action = entry.nonfatalAction;
    rule = `XID ${x.xid} Nonfatal: ${action}`;
  }
  if (ctx.remapFailure && entry.remapFailureAction !== undefined && ACTION_RANK[entry.remapFailureAction] > ACTION_RANK[action]) {
    action = entry.remapFailureAction;
    rule = `XID ${x.xid} with a row-remapping failure: ${action}`;
  }
  const r = entry.repeat;
  if (r && ctx.earlierOnGpu + 1 >= r.count && ACTION_RANK[r.action] > ACTION_RANK[action]) {
    action = r.action;
    rule = `XID ${x.xid} ${ctx.earlierOnGpu + 1} times on one GPU within ${r.withinSec}s: ${action}`;
  }
  return { action, rule };
}

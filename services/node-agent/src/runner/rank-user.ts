// Which Unix user runs a rank. The agent runs as root (it reads the kernel log, signals any
// rank's process group, owns the state folder), but a rank is the tenant's code: it runs as
// the user the agent's config names for the job's tenant (ranks.tenants), else the default
// (ranks.user), else the agent's own user; and never as uid 0 unless ranks.allowRoot says so.
// A job may name its own user (JobSpec.run_as_user), which the agent honours only when
// ranks.specUsers lists that user (or the same uid:gid) for the job's tenant: the node's
// operator, not the job, decides which identities a tenant may take.
// The tenant is the assignment's GANTRY_TENANT, set by the scheduler (a job cannot override
// it) on a command the agent has checked the signature of; run_as_user travels in the same
// signed command.
//
// The drop itself is spawn's uid/gid: libuv calls setgroups(0, NULL) before setgid/setuid, so
// the rank keeps none of the agent's supplementary groups (and gets none of the user's: a
// group the ranks need, e.g. for a device node, must be the user's primary group).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { NUMERIC_USER_REF, userRefProblem } from '@gantry/proto';

/** A user by name (looked up with getent, so NSS users work), or numerically: uid[:gid]. */
export type RankUserRef = string;

export interface RankUserPolicy {
  /** The user of ranks of tenants not in `tenants`; unset: the agent's own user. */
  user?: RankUserRef | undefined;
  /** Tenant name -> user. */
  tenants: Record<string, RankUserRef>;
  /** Tenant name -> the users its jobs may name in run_as_user; a tenant not listed may name none. */
  specUsers?: Record<string, RankUserRef[]> | undefined;
  /** Whether a rank may run as uid 0 (root). */
  allowRoot: boolean;
}

export interface RankIdentity {
  uid: number;
  gid: number;
  /** User name ('' for a uid without a passwd entry). */
  name: string;
  /** Home directory from the passwd entry; '' when unknown. */
  home: string;
  /** Whether spawning needs a change of user or group (the agent's own otherwise). */
  drop: boolean;
}

export class RankUserError extends Error {
  override name = 'RankUserError';
}

export interface PasswdEntry { name: string; uid: number; gid: number; home: string }

/** `getent passwd KEY` (a name or a uid); undefined when there is no such user. */
export function getentPasswd(key: string): PasswdEntry | undefined {
  let out: string;
  try {
    out = execFileSync('getent', ['passwd', key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 });
  } catch {
    return undefined; // exit 2: no such entry
  }
  const f = out.split('\n')[0]!.split(':');
  if (f.length < 7) return undefined;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** The problem with a user reference as written in the config, or undefined (the syntax the gateway checks run_as_user with). */
export const rankUserRefProblem = userRefProblem;

export class RankUsers {
  constructor(
    private readonly policy: RankUserPolicy,
    private readonly lookup: (key: string) => PasswdEntry | undefined = getentPasswd,
    private readonly self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
  ) {}

  /**
   * The identity a rank of `tenant` runs as: `specUser` (the job's run_as_user) when given,
   * else the tenant's; throws RankUserError with the reason it cannot run.
   */
  identityFor(tenant: string, specUser = ''): RankIdentity {
    if (specUser) return this.checked(this.specIdentity(tenant, specUser));
    const ref = this.policy.tenants[tenant] ?? this.policy.user;
    const id = ref === undefined ? this.own() : this.resolve(ref, tenant);
    if (id.uid === 0 && !this.policy.allowRoot) {
      throw new RankUserError(ref === undefined
        ? 'ranks may not run as root: the agent runs as root and no rank user is configured (set ranks.user or ranks.tenants in agent.yaml, or GANTRY_RANK_USER; ranks.allowRoot: true allows root)'
        : `ranks may not run as root: tenant ${JSON.stringify(tenant)} maps to ${JSON.stringify(ref)}, uid 0 (ranks.allowRoot: true allows it)`);
    }
    return this.checked(id);
  }

  /**
   * The job's own user. Checked in the order that gives the most precise reason: the name
   * must be well-formed and exist here, root needs allowRoot whatever the list says, and then
   * the tenant's list must hold it, by its text or by the uid:gid it resolves to (so `alice`
   * listed also allows `1001:1001` when that is alice, never more than the listed identity).
   */
  private specIdentity(tenant: string, ref: RankUserRef): RankIdentity {
    const what = `run_as_user ${JSON.stringify(ref.slice(0, 40))}`;
    const problem = userRefProblem(ref);
    if (problem) throw new RankUserError(`${what} ${problem}`);
    const id = this.lookupRef(ref);
    if (!id) throw new RankUserError(`${what} does not exist on this node`);
    if (id.uid === 0 && !this.policy.allowRoot) {
      throw new RankUserError(`ranks may not run as root: ${what} is uid 0 (ranks.allowRoot: true allows it)`);
    }
    const allowed = this.policy.specUsers?.[tenant] ?? [];
    const same = (a: RankUserRef) => {
      if (a === ref) return true;
      const other = this.lookupRef(a);
      return other !== undefined && other.uid === id.uid && other.gid === id.gid;
    };
    if (!allowed.some(same)) {
      throw new RankUserError(allowed.length === 0
        ? `${what} is not allowed for tenant ${JSON.stringify(tenant)} on this node (ranks.specUsers lists no user for it)`
        : `${what} is not allowed for tenant ${JSON.stringify(tenant)} on this node (ranks.specUsers.${tenant}: ${allowed.join(', ')})`);
    }
    return id;
  }

  private checked(id: RankIdentity): RankIdentity {
    if (id.drop && this.self.uid !== 0) {
      throw new RankUserError(`cannot run ranks as ${id.name || id.uid} (uid ${id.uid}, gid ${id.gid}): the agent is not root (uid ${this.self.uid})`);
    }
    return id;
  }

  /** The agent's own identity, read once (os.userInfo reads the passwd database). */
  private ownId: RankIdentity | undefined;

  private own(): RankIdentity {
    if (!this.ownId) {
      const info = userInfo();
      this.ownId = { uid: this.self.uid, gid: this.self.gid, name: info.username, home: info.homedir, drop: false };
    }
    return { ...this.ownId };
  }

  private resolve(ref: RankUserRef, tenant: string): RankIdentity {
    const id = this.lookupRef(ref);
    if (!id) throw new RankUserError(`rank user ${JSON.stringify(ref)} of tenant ${JSON.stringify(tenant)} does not exist on this node`);
    return id;
  }

  /** A name's passwd entry, or uid[:gid] with or without one (gid: the entry's, else the uid); undefined for an unknown name. */
  private lookupRef(ref: RankUserRef): RankIdentity | undefined {
    const m = NUMERIC_USER_REF.exec(ref);
    if (m) {
      const uid = Number(m[1]);
      const e = this.lookup(String(uid));
      const gid = m[2] !== undefined ? Number(m[2]) : e?.gid ?? uid;
      return this.identity({ name: e?.name ?? '', uid, gid, home: e?.home ?? '' });
    }
    const e = this.lookup(ref);
    return e && this.identity(e);
  }

  private identity(e: PasswdEntry): RankIdentity {
    return { uid: e.uid, gid: e.gid, name: e.name, home: e.home, drop: e.uid !== this.self.uid || e.gid !== this.self.gid };
  }
}

/** The user's own environment variables, replacing the agent's (HOME=/root would be wrong). */
export function identityEnv(id: RankIdentity): Record<string, string> {
  if (!id.drop) return {};
  const name = id.name || String(id.uid);
  return { USER: name, LOGNAME: name, HOME: id.home && id.home !== '/nonexistent' ? id.home : '/tmp' };
}

/**
 * Makes the rank's own folders (working folder by default, exit and error files) the user's,
 * and closed to everyone else (0700): they hold its stdout and stderr, which ranks of other
 * tenants, running as other users, must not read.
 */
export function giveToUser(id: RankIdentity, dirs: string[]): void {
  if (!id.drop) return;
  for (const d of dirs) {
    chownSync(d, id.uid, id.gid);
    chmodSync(d, 0o700);
  }
}

/** The folder holding every rank's folder: passable by rank users (0711), not listable. */
export function openForTraversal(id: RankIdentity, dir: string): void {
  if (id.drop) chmodSync(dir, 0o711);
}

/**
 * Why `dir` is not a usable working folder for the user, or undefined: every folder above it
 * must let the user through (x), and the folder itself must let it in, going by the mode bits
 * (no ACLs). Checked before spawning, so the rank fails with this reason instead of a bare
 * EACCES from the child.
 */
export function unreachableProblem(id: RankIdentity, dir: string): string | undefined {
  if (!id.drop || id.uid === 0) return undefined;
  const who = `${id.name || 'uid'} (uid ${id.uid})`;
  let d = resolve(dir);
  for (;;) {
    let st;
    try {
      st = statSync(d);
    } catch (err) {
      return `${who} cannot reach ${dir}: ${d}: ${(err as NodeJS.ErrnoException).code}`;
    }
    const bits = st.uid === id.uid ? (st.mode >> 6) & 7 : st.gid === id.gid ? (st.mode >> 3) & 7 : st.mode & 7;
    if ((bits & 1) === 0) return `${who} cannot reach ${dir}: ${d} is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner ${st.uid}:${st.gid}`;
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

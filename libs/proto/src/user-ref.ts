// The syntax of a Unix user reference, as JobSpec.run_as_user and the agent's rank-user
// settings (agent.yaml ranks.*) write it: a user name (looked up on each node, so NSS users
// work) or numerically uid[:gid]. One definition, so the gateway refuses at submit exactly
// what an agent would refuse at start.

/** uid[:gid]; ids are 32-bit and 4294967295 is (uid_t)-1, "no change", never a user. */
export const NUMERIC_USER_REF = /^(\d{1,10})(?::(\d{1,10}))?$/;
/** A POSIX-ish login name as useradd accepts it (at most 32 characters, Samba's trailing $). */
export const NAME_USER_REF = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;
export const MAX_UNIX_ID = 4294967294;
/** The longest reference either form allows ("4294967294:4294967294" or a 32-character name plus $). */
export const MAX_USER_REF_LENGTH = 33;

/** The problem with a user reference, or undefined when it is a name or uid[:gid]. */
export function userRefProblem(ref: string): string | undefined {
  const m = NUMERIC_USER_REF.exec(ref);
  if (m) {
    const bad = [m[1], m[2]].find((id) => id !== undefined && Number(id) > MAX_UNIX_ID);
    return bad === undefined ? undefined : `must be a user name or uid[:gid] with ids up to ${MAX_UNIX_ID}, got ${JSON.stringify(ref)}`;
  }
  if (NAME_USER_REF.test(ref)) return undefined;
  return `must be a user name or uid[:gid], got ${JSON.stringify(ref.slice(0, 40))}`;
}

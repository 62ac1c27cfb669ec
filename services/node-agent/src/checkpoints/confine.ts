// Paths acted on for a job (explicit reports, deletions) must lie inside its checkpoint
// directory: lexically, and once every symlink is resolved. The directory itself is refused.
import { lstat, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';

export class OutsideError extends Error {
  override name = 'OutsideError';
}

/** Lexically strictly inside `root` (after normalising '.' and '..'). */
export const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * The real path of `path`, which must be an existing entry strictly inside `root` both as
 * written and with symlinks resolved, and not itself a symlink. Throws OutsideError otherwise.
 */
export async function confined(root: string, path: string): Promise<string> {
  if (!isAbsolute(path)) throw new OutsideError(`${path} is not an absolute path`);
  if (path.includes('\0')) throw new OutsideError('path contains a NUL character');
  if (!inside(resolve(root), resolve(path))) throw new OutsideError(`${path} is not inside the job's checkpoint directory ${root}`);
  const st = await lstat(path).catch(() => undefined);
  if (!st) throw new OutsideError(`${path} does not exist`);
  if (st.isSymbolicLink()) throw new OutsideError(`${path} is a symlink; not followed`);
  const [realRoot, real] = await Promise.all([realpath(root), realpath(path)]);
  if (!inside(realRoot, real)) throw new OutsideError(`${path} resolves to ${real}, outside the job's checkpoint directory ${realRoot}`);
  return real;
}

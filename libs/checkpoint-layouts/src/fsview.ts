// Read-only access to a directory tree that never leaves it: every path is resolved with
// realpath and must stay under the root's real path, so a symlink that points outside is
// reported, not followed. Files are opened by their resolved path with O_NOFOLLOW.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';

export interface Limits {
  /** Largest pickle read (`.metadata`, `data.pkl` inside a torch archive), bytes. */
  maxPickleBytes: number;
  /** Largest JSON or text file read (trainer_state.json, metadata.json, index files, safetensors headers), bytes. */
  maxJsonBytes: number;
  /** Most entries read from one directory. */
  maxDirEntries: number;
  /** Deepest directory level listed inside one checkpoint. */
  maxDepth: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxPickleBytes: 128 * 1024 * 1024,
  maxJsonBytes: 64 * 1024 * 1024,
  maxDirEntries: 100_000,
  maxDepth: 8,
};

/** A problem with the data read (missing, short, unparseable, escaping the root). Its message is a reason. */
export class CheckError extends Error {
  override name = 'CheckError';
}

export type EntryKind = 'file' | 'dir' | 'other' | 'outside' | 'broken';

export interface Entry {
  name: string;
  /** Absolute path as seen under the root (not the resolved one). */
  path: string;
  kind: EntryKind;
  size: number;
  symlink: boolean;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

export class FsView {
  private constructor(
    readonly root: string,
    private readonly realRoot: string,
    readonly limits: Limits,
  ) {}

  /** undefined when `root` does not exist or is not a directory. */
  static async open(root: string, limits: Limits): Promise<FsView | undefined> {
    try {
      const real = await realpath(root);
      if (!(await stat(real)).isDirectory()) return undefined;
      return new FsView(root, real, limits);
    } catch {
      return undefined;
    }
  }

  private inside(real: string): boolean {
    return real === this.realRoot || real.startsWith(this.realRoot.endsWith(sep) ? this.realRoot : this.realRoot + sep);
  }

  /** `rel` as a path under `base`, or a CheckError when it is absolute or climbs out of `base`. */
  static child(base: string, rel: string): string {
    if (rel.length === 0 || rel.includes('\0') || isAbsolute(rel)) throw new CheckError(`path ${JSON.stringify(rel)} is not a relative path`);
    const abs = join(base, rel);
    const r = relative(base, abs);
    if (r === '' || r === '..' || r.startsWith('..' + sep) || isAbsolute(r)) throw new CheckError(`path ${JSON.stringify(rel)} leaves its checkpoint directory`);
    return abs;
  }

  /** The real path of `abs` when it exists inside the root; a CheckError otherwise. */
  async resolve(abs: string, label = this.label(abs)): Promise<{ real: string; size: number; isFile: boolean; isDir: boolean }> {
    let real: string;
    try {
      real = await realpath(abs);
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new CheckError(`${label} is missing`);
      if (code === 'ELOOP') throw new CheckError(`${label} is a symlink loop`);
      throw new CheckError(`${label} cannot be read (${code ?? String(err)})`);
    }
    if (!this.inside(real)) throw new CheckError(`${label} is a symlink to outside the scanned directory; not followed`);
    try {
      const st = await stat(real);
      return { real, size: st.size, isFile: st.isFile(), isDir: st.isDirectory() };
    } catch (err) {
      throw new CheckError(`${label} cannot be read (${errCode(err) ?? String(err)})`);
    }
  }

  /** Size of a regular file inside the root; CheckError when missing, not a file or outside. */
  async fileSize(abs: string, label?: string): Promise<number> {
    const r = await this.resolve(abs, label);
    if (!r.isFile) throw new CheckError(`${label ?? this.label(abs)} is not a regular file`);
    return r.size;
  }

  async exists(abs: string): Promise<boolean> {
    try {
      await this.resolve(abs);
      return true;
    } catch {
      return false;
    }
  }

  async isFile(abs: string): Promise<boolean> {
    try {
      return (await this.resolve(abs)).isFile;
    } catch {
      return false;
    }
  }

  /** Entries of a directory (symlinks resolved when they stay inside the root), sorted by name. */
  async list(dir: string): Promise<Entry[]> {
    const r = await this.resolve(dir);
    if (!r.isDir) throw new CheckError(`${this.label(dir)} is not a directory`);
    let names: string[];
    try {
      names = (await readdir(r.real)).sort();
    } catch (err) {
      throw new CheckError(`${this.label(dir)} cannot be listed (${errCode(err) ?? String(err)})`);
    }
    if (names.length > this.limits.maxDirEntries) throw new CheckError(`${this.label(dir)} has ${names.length} entries, over the limit of ${this.limits.maxDirEntries}`);
    const out: Entry[] = [];
    for (const name of names) {
      const path = join(dir, name);
      let symlink = false;
      try {
        const lst = await lstat(join(r.real, name));
        symlink = lst.isSymbolicLink();
        if (!symlink) {
          out.push({ name, path, symlink, kind: lst.isFile() ? 'file' : lst.isDirectory() ? 'dir' : 'other', size: lst.isFile() ? lst.size : 0 });
          continue;
        }
        const t = await this.resolve(path);
        out.push({ name, path, symlink, kind: t.isFile ? 'file' : t.isDir ? 'dir' : 'other', size: t.isFile ? t.size : 0 });
      } catch (err) {
        const why = err instanceof CheckError && err.message.includes('outside') ? 'outside' : 'broken';
        out.push({ name, path, symlink, kind: why, size: 0 });
      }
    }
    return out;
  }

  /** Every regular file under `dir` (relative path, size), depth- and count-bounded; escaping links listed apart. */
  async walk(dir: string): Promise<{ files: { path: string; size: number }[]; skipped: string[] }> {
    const files: { path: string; size: number }[] = [];
    const skipped: string[] = [];
    const seen = new Set<string>();
    const todo: { abs: string; rel: string; depth: number }[] = [{ abs: dir, rel: '', depth: 0 }];
    while (todo.length > 0) {
      const { abs, rel, depth } = todo.pop()!;
      let real: string;
      try {
        real = (await this.resolve(abs)).real;
      } catch (err) {
        skipped.push(`${rel || '.'}: ${(err as Error).message}`);
        continue;
      }
      if (seen.has(real)) continue;
      seen.add(real);
      let entries: Entry[];
      try {
        entries = await this.list(abs);
      } catch (err) {
        skipped.push(`${rel || '.'}: ${(err as Error).message}`);
        continue;
      }
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.kind === 'file') {
          files.push({ path: r, size: e.size });
          if (files.length > this.limits.maxDirEntries) throw new CheckError(`more than ${this.limits.maxDirEntries} files under ${this.label(dir)}`);
        } else if (e.kind === 'dir') {
          if (depth + 1 >= this.limits.maxDepth) skipped.push(`${r}/: deeper than ${this.limits.maxDepth} levels, not listed`);
          else todo.push({ abs: e.path, rel: r, depth: depth + 1 });
        } else if (e.kind === 'outside') {
          skipped.push(`${r}: symlink to outside the scanned directory, not followed`);
        } else if (e.kind === 'broken') {
          skipped.push(`${r}: broken symlink`);
        }
      }
    }
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { files, skipped };
  }

  private async openFile(abs: string, label: string): Promise<{ fh: FileHandle; size: number }> {
    const r = await this.resolve(abs, label);
    if (!r.isFile) throw new CheckError(`${label} is not a regular file`);
    try {
      const fh = await open(r.real, constants.O_RDONLY | constants.O_NOFOLLOW);
      return { fh, size: (await fh.stat()).size };
    } catch (err) {
      throw new CheckError(`${label} cannot be opened (${errCode(err) ?? String(err)})`);
    }
  }

  /** The whole file, refused when larger than `max` bytes. */
  async readFile(abs: string, max: number, label = this.label(abs)): Promise<Buffer> {
    const { fh, size } = await this.openFile(abs, label);
    try {
      if (size > max) throw new CheckError(`${label} is ${size} bytes, over the limit of ${max} for this kind of file`);
      return await readExactly(fh, 0, size, label);
    } finally {
      await fh.close();
    }
  }

  /** Runs `fn` with an open handle to the file and its size. */
  async withFile<T>(abs: string, fn: (fh: FileHandle, size: number) => Promise<T>, label = this.label(abs)): Promise<T> {
    const { fh, size } = await this.openFile(abs, label);
    try {
      return await fn(fh, size);
    } finally {
      await fh.close();
    }
  }

  /** sha256 of a file, streamed. */
  async sha256(abs: string): Promise<string> {
    const { fh } = await this.openFile(abs, this.label(abs));
    const hash = createHash('sha256');
    const stream = fh.createReadStream({ autoClose: false, highWaterMark: 1 << 20 });
    try {
      for await (const chunk of stream) hash.update(chunk as Buffer);
    } finally {
      stream.destroy();
      await fh.close();
    }
    return hash.digest('hex');
  }

  /** A path relative to the root, for messages. */
  label(abs: string): string {
    const r = relative(this.root, abs);
    return r === '' ? '.' : r.split(sep).join('/');
  }
}

/** `length` bytes at `offset`; CheckError when the file is shorter. */
export async function readExactly(fh: FileHandle, offset: number, length: number, label: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new CheckError(`${label} ends at ${offset + done} bytes, expected at least ${offset + length}`);
    done += bytesRead;
  }
  return buf;
}

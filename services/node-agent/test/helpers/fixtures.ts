// Test helpers: read fixtures, load a sysfs directory tree or a ttar archive into the map
// the RDMA parser takes, and cut sections out of the nvidia_gpu_exporter captures.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

export function fixture(path: string): string {
  return readFileSync(`${FIXTURES}${path}`, 'utf8');
}

/** A directory tree as relative path → contents. */
export function loadTree(dir: string): Map<string, string> {
  const root = `${FIXTURES}${dir}`;
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(`${root}/${rel}`)) {
      const p = rel === '' ? name : `${rel}/${name}`;
      if (statSync(`${root}/${p}`).isDirectory()) walk(p);
      else out.set(p, readFileSync(`${root}/${p}`, 'utf8'));
    }
  };
  walk('');
  return out;
}

/**
 * Extracts a ttar archive (prometheus/procfs' text tar: "Path:", "Lines: N", N lines,
 * "Mode:"; "Directory:" and "SymlinkTo:" records; a trailing "EOF" marks a file without a
 * final newline) as path → contents, for paths under `prefix` (made relative to it).
 */
export function extractTtar(text: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^Path: (.*)$/.exec(lines[i]!);
    if (!m) continue;
    const path = m[1]!;
    const n = /^Lines: (\d+)$/.exec(lines[i + 1] ?? '');
    if (!n) continue; // SymlinkTo: records carry no content
    const count = Number(n[1]);
    const body = lines.slice(i + 2, i + 2 + count);
    i += 1 + count;
    let content = body.map((l) => l.replace(/NULLBYTE/g, '\0')).join('\n');
    if (content.endsWith('EOF')) content = content.slice(0, -3);
    else if (count > 0) content += '\n';
    if (!path.startsWith(prefix)) continue;
    out.set(path.slice(prefix.length).replace(/^\//, ''), content);
  }
  return out;
}

/** The body of "# <name>" sections of an nvidia_gpu_exporter capture (after the "# $ cmd" banner). */
export function captureSection(text: string, title: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l === `# ${title}`);
  if (start < 0) throw new Error(`no section ${title}`);
  // "# title", "# $ command", "####...", then the body until the next "####" banner.
  let i = start + 1;
  while (i < lines.length && lines[i]!.startsWith('#')) i++;
  const body: string[] = [];
  for (; i < lines.length && !lines[i]!.startsWith('################'); i++) body.push(lines[i]!);
  return body.join('\n').trim() + '\n';
}

/** Polls `check` until it gives a value, or fails naming `what` after `timeoutMs`. */
export async function until<T>(what: string, check: () => T | undefined, timeoutMs = 10_000, pollMs = 50): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

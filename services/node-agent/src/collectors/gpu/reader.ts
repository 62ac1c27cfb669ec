// Runs nvidia-smi. A hung driver makes nvidia-smi hang too (it is one of the first signs of
// a GPU falling off the bus), so every call has a timeout and a kill.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { GPU_QUERY_FIELDS } from './query-csv.js';

export interface NvidiaSmiOptions {
  /** Path of the binary; findNvidiaSmi() looks in PATH and /usr/local/nvidia/bin. */
  binary?: string;
  timeoutMs?: number;
}

export class NvidiaSmiError extends Error {
  override readonly name = 'NvidiaSmiError';
  constructor(message: string, readonly stderr: string, readonly timedOut: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const CANDIDATES = ['/usr/bin/nvidia-smi', '/usr/local/nvidia/bin/nvidia-smi', '/usr/local/bin/nvidia-smi'];

/** The nvidia-smi binary, or undefined when this host has none. */
export async function findNvidiaSmi(extraDirs: readonly string[] = []): Promise<string | undefined> {
  const dirs = [...(process.env['PATH'] ?? '').split(':').filter(Boolean), ...extraDirs];
  const paths = [...dirs.map((d) => `${d}/nvidia-smi`), ...CANDIDATES];
  for (const p of paths) {
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

export function runNvidiaSmi(args: readonly string[], options: NvidiaSmiOptions = {}): Promise<string> {
  const binary = options.binary ?? 'nvidia-smi';
  return new Promise((resolve, reject) => {
    execFile(binary, [...args], { timeout: options.timeoutMs ?? 10_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const timedOut = (err as { killed?: boolean }).killed === true;
        // nvidia-smi prints its errors (e.g. "Field ... is not a valid field") on stdout.
        reject(new NvidiaSmiError(`nvidia-smi ${args.join(' ')}: ${timedOut ? 'timed out' : err.message}`, `${stdout}${stderr}`, timedOut, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

const INVALID_FIELD = /Field "([^"]+)" is not a valid field to query/;

/**
 * `--query-gpu=<fields> --format=csv,noheader,nounits`. Older drivers reject fields they do
 * not know (and then print nothing at all), so a rejected field is dropped and the query
 * retried; returns the fields actually used, which the parser needs.
 */
export async function queryGpuCsv(
  fields: readonly string[] = GPU_QUERY_FIELDS,
  options: NvidiaSmiOptions = {},
): Promise<{ text: string; fields: readonly string[] }> {
  let current = [...fields];
  for (let attempt = 0; attempt <= 2 * fields.length; attempt++) {
    try {
      const text = await runNvidiaSmi([`--query-gpu=${current.join(',')}`, '--format=csv,noheader,nounits'], options);
      return { text, fields: current };
    } catch (err) {
      const m = err instanceof NvidiaSmiError ? INVALID_FIELD.exec(err.stderr) : null;
      if (!m) throw err;
      const bad = m[1];
      const legacy = bad?.replace(/^clocks_event_reasons/, 'clocks_throttle_reasons');
      current = current.flatMap((f) => (f !== bad ? [f] : legacy !== bad && !current.includes(legacy!) ? [legacy!] : []));
    }
  }
  throw new NvidiaSmiError('nvidia-smi rejected too many query fields', '', false);
}

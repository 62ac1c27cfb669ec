// The client config file: where the gateway is and how to authenticate to it, so a user sets
// a token or certificate once instead of on every command.
//
//   # ~/.config/gantry/config.yaml ($GANTRY_CONFIG names another; $XDG_CONFIG_HOME is honoured)
//   address: gantry.example.com:7070
//   token: eyJhbGciOi...        # or tokenFile: ~/.config/gantry/token
//   tls:                        # or tls: true (system roots)
//     ca: /etc/gantry/ca.crt
//     cert: ~/.config/gantry/client.crt
//     key: ~/.config/gantry/client.key
//
// Precedence: explicit options (CLI flags) > environment ($GANTRY_ADDR, $GANTRY_TOKEN) > this file.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { TlsOptions } from './options.js';

export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

export interface ClientConfigFile {
  path: string;
  address?: string;
  token?: string;
  tls?: TlsOptions | true;
}

type Env = Record<string, string | undefined>;

/** The path the config file is read from: $GANTRY_CONFIG, else $XDG_CONFIG_HOME/gantry/config.yaml, else ~/.config/gantry/config.yaml. */
export function configFilePath(env: Env): string {
  if (env['GANTRY_CONFIG']) return env['GANTRY_CONFIG'];
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'gantry', 'config.yaml');
}

function expandHome(p: string, env: Env): string {
  return p.startsWith('~/') ? join(env['HOME'] || homedir(), p.slice(2)) : p;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigFileError(`cannot read ${what}: ${(err as Error).message}`);
  }
}

/**
 * Reads the config file; undefined when there is none at the default path. A file named by
 * $GANTRY_CONFIG must exist. Throws ConfigFileError naming the file and the problem.
 */
export function loadConfigFile(env: Env, explicitPath?: string): ClientConfigFile | undefined {
  const path = explicitPath ?? configFilePath(env);
  if (!existsSync(path)) {
    if (explicitPath) throw new ConfigFileError(`config file ${path} does not exist`);
    if (env['GANTRY_CONFIG']) throw new ConfigFileError(`GANTRY_CONFIG names ${path}, which does not exist`);
    return undefined;
  }
  let doc: unknown;
  try {
    doc = parseYaml(read(path, path).toString('utf8'));
  } catch (err) {
    if (err instanceof ConfigFileError) throw err;
    throw new ConfigFileError(`${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  doc ??= {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigFileError(`${path}: expected a mapping (address, token, tokenFile, tls)`);
  const d = doc as Record<string, unknown>;
  const unknown = Object.keys(d).filter((k) => !['address', 'token', 'tokenFile', 'tls'].includes(k));
  if (unknown.length > 0) throw new ConfigFileError(`${path}: unknown keys ${unknown.join(', ')} (known: address, token, tokenFile, tls)`);
  const str = (k: string, v: unknown): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !v) throw new ConfigFileError(`${path}: ${k} must be a non-empty string`);
    return v;
  };
  const out: ClientConfigFile = { path };
  const address = str('address', d['address']);
  if (address) out.address = address;
  const token = str('token', d['token']);
  const tokenFile = str('tokenFile', d['tokenFile']);
  if (token && tokenFile) throw new ConfigFileError(`${path}: set token or tokenFile, not both`);
  if (token) out.token = token;
  if (tokenFile) out.token = read(expandHome(tokenFile, env), `tokenFile ${tokenFile}`).toString('utf8').trim();
  if (d['tls'] === true) out.tls = true;
  else if (d['tls'] !== undefined && d['tls'] !== false && d['tls'] !== null) {
    if (typeof d['tls'] !== 'object' || Array.isArray(d['tls'])) throw new ConfigFileError(`${path}: tls must be true or a mapping with ca, cert, key`);
    const t = d['tls'] as Record<string, unknown>;
    const tls: TlsOptions = {};
    for (const k of ['ca', 'cert', 'key'] as const) {
      const p = str(`tls.${k}`, t[k]);
      if (p) tls[k] = read(expandHome(p, env), `tls.${k} ${p}`);
    }
    if (Boolean(tls.cert) !== Boolean(tls.key)) throw new ConfigFileError(`${path}: tls.cert and tls.key go together`);
    out.tls = tls;
  }
  return out;
}

// The client config file: where it is looked for, what it may say, and its place in the
// precedence (options > environment > file).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigFileError, addDefaults, configFilePath, loadConfigFile } from '../src/index.js';

const home = mkdtempSync(join(tmpdir(), 'gantry-home-'));
mkdirSync(join(home, '.config/gantry'), { recursive: true });

describe('client config file', () => {
  it('is looked for in $GANTRY_CONFIG, $XDG_CONFIG_HOME or ~/.config', () => {
    expect(configFilePath({ GANTRY_CONFIG: '/x.yaml', HOME: home })).toBe('/x.yaml');
    expect(configFilePath({ XDG_CONFIG_HOME: '/xdg', HOME: home })).toBe('/xdg/gantry/config.yaml');
    expect(configFilePath({ HOME: home })).toBe(join(home, '.config/gantry/config.yaml'));
    expect(loadConfigFile({ HOME: join(home, 'nowhere') })).toBeUndefined();
    expect(() => loadConfigFile({ GANTRY_CONFIG: join(home, 'missing.yaml') })).toThrow(ConfigFileError);
  });

  it('gives address, token (or tokenFile) and TLS files, below options and environment', () => {
    writeFileSync(join(home, 'token'), 'file-token\n');
    writeFileSync(join(home, 'ca.crt'), 'CA');
    writeFileSync(join(home, '.config/gantry/config.yaml'), 'address: gw.example:7070\ntokenFile: ~/token\ntls:\n  ca: ~/ca.crt\n');
    const env = { HOME: home };
    const file = loadConfigFile(env)!;
    expect(file).toMatchObject({ address: 'gw.example:7070', token: 'file-token' });
    expect((file.tls as { ca: Buffer }).ca.toString()).toBe('CA');
    expect(addDefaults({ env })).toMatchObject({ address: 'gw.example:7070', metadata: { authorization: 'Bearer file-token' } });
    expect(addDefaults({ env: { ...env, GANTRY_TOKEN: 'env-token', GANTRY_ADDR: 'env:1' } })).toMatchObject({ address: 'env:1', metadata: { authorization: 'Bearer env-token' } });
    expect(addDefaults({ env, token: 'flag', address: 'flag:2' })).toMatchObject({ address: 'flag:2', metadata: { authorization: 'Bearer flag' } });
    expect(addDefaults({ env, configFile: false }).metadata).toEqual({});
  });

  it('refuses unknown keys, half a key pair, and token with tokenFile', () => {
    const bad = (text: string) => { const p = join(home, `bad-${Math.random()}.yaml`); writeFileSync(p, text); return () => loadConfigFile({ HOME: home }, p); };
    expect(bad('adress: x\n')).toThrow(/unknown keys adress/);
    expect(bad(`tls:\n  cert: ${join(home, 'ca.crt')}\n`)).toThrow(/tls.cert and tls.key go together/);
    expect(bad('token: a\ntokenFile: b\n')).toThrow(/token or tokenFile, not both/);
  });
});

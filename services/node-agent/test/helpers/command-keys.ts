// A scheduler command-signing key pair for agent config tests (the agent refuses to start
// without the public key): made once per test process, in a temporary folder.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCommandKeys, type CommandKeyFiles } from '../../../../deploy/local/bus-security.js';

let keys: CommandKeyFiles | undefined;

export function commandKeys(): CommandKeyFiles {
  keys ??= writeCommandKeys(mkdtempSync(join(tmpdir(), 'gantry-agent-keys-')));
  return keys;
}

/** SCHEDULER_PUBLIC_KEY_FILE for loadAgentConfig's environment. */
export function schedulerKeyEnv(): NodeJS.ProcessEnv {
  return { SCHEDULER_PUBLIC_KEY_FILE: commandKeys().publicKeyFile };
}

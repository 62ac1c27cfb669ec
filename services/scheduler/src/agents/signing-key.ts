// The scheduler's command signing key (Ed25519, PEM), validated at start like every setting:
// a scheduler that cannot sign would have every command refused by the agents.
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { commandSigningKey } from '@gantry/bus';

/** Reads and parses the key file; the error says what is wrong with it. */
export function loadCommandSigningKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return commandSigningKey(pem);
}

/** COMMAND_SIGNING_KEY_FILE: required, a readable Ed25519 private key (PKCS#8 PEM). */
export const commandSigningKeyEnv = {
  COMMAND_SIGNING_KEY_FILE: z.string({ error: 'required: the Ed25519 private key (PEM) agent commands are signed with (docs/security.md)' }).min(1).superRefine((file, ctx) => {
    try {
      loadCommandSigningKey(file);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  }),
};

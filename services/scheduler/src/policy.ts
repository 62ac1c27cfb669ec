// The scheduling policy lives in Redis (so every replica and a new leader see the same one);
// SCHEDULING_CONFIG names a YAML/JSON file that seeds it when none is stored, and the admin
// RPC replaces it after validation.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { SchedulingStateStore } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { DEFAULT_CONFIG, parseSchedulingConfig, type SchedulingConfig } from './placement/index.js';
import { StoredConfigCache } from './stored-config.js';

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** Parses and validates a policy document (YAML or JSON text); throws PolicyError listing every problem. */
export function parsePolicyText(text: string, source: string): SchedulingConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new PolicyError(`${source}: not valid YAML/JSON: ${(err as Error).message}`);
  }
  try {
    return parseSchedulingConfig(doc ?? {});
  } catch (err) {
    throw new PolicyError(`${source}: ${(err as Error).message}`);
  }
}

export async function seedPolicy(store: SchedulingStateStore, file: string | undefined, log: Logger): Promise<void> {
  if (!file) return;
  const config = parsePolicyText(readFileSync(file, 'utf8'), file);
  if (await store.seedConfigJson(JSON.stringify(config))) log.info({ file, tenants: Object.keys(config.tenants).length }, 'seeded scheduling policy');
}

/** The stored policy (defaults when none is stored or it no longer validates). */
export class PolicyCache extends StoredConfigCache<SchedulingConfig> {
  constructor(store: SchedulingStateStore, log: Logger) {
    super(() => store.configJson(), parseSchedulingConfig, DEFAULT_CONFIG, 'scheduling policy', log);
  }
}

// The health config lives in Redis beside the scheduling policy (every replica and a new
// leader see the same one); the admin RPC replaces it after validation.
import { parse as parseYaml } from 'yaml';
import type { HealthStore } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { DEFAULT_HEALTH_CONFIG, HealthConfigError, parseHealthConfig, type HealthConfig } from '../health/index.js';
import { StoredConfigCache } from '../stored-config.js';

/** Parses and validates a health config document (YAML or JSON); throws HealthConfigError listing every problem. */
export function parseHealthConfigText(text: string, source: string): HealthConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new HealthConfigError([`${source}: not valid YAML/JSON: ${(err as Error).message}`]);
  }
  return parseHealthConfig(doc ?? {});
}

/** The stored health config (defaults when none is stored or it no longer validates). */
export class HealthConfigCache extends StoredConfigCache<HealthConfig> {
  constructor(store: HealthStore, log: Logger) {
    super(() => store.configJson(), parseHealthConfig, DEFAULT_HEALTH_CONFIG, 'health config', log);
  }
}

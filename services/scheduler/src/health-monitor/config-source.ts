// The health config lives in Redis beside the scheduling policy (every replica and a new
// leader see the same one); the admin RPC replaces it after validation.
import { parse as parseYaml } from 'yaml';
import type { HealthStore } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import { DEFAULT_HEALTH_CONFIG, HealthConfigError, parseHealthConfig, type HealthConfig } from '../health/index.js';

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

/** The stored config; a stored document that no longer validates falls back to defaults (and says so). */
export class HealthConfigCache {
  private lastJson: string | undefined;
  private current: HealthConfig = DEFAULT_HEALTH_CONFIG;

  constructor(private readonly store: HealthStore, private readonly log: Logger) {}

  async get(): Promise<HealthConfig> {
    const json = await this.store.configJson();
    if (json !== this.lastJson) {
      this.lastJson = json;
      try {
        this.current = json ? parseHealthConfig(JSON.parse(json)) : DEFAULT_HEALTH_CONFIG;
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'stored health config is invalid; using defaults');
        this.current = DEFAULT_HEALTH_CONFIG;
      }
    }
    return this.current;
  }
}

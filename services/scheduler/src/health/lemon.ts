// Repeat offenders. In the 504-GPU report the top 3 nodes caused more than half of the node
// exclusions: a node that keeps failing is cheaper to pull for repair than to keep
// re-admitting. N incidents within a window make a lemon, shown to operators and weighed by
// placement; the flag drops once old incidents age out of the window.
import type { HealthConfig } from './config.js';
import type { NodeRecord } from './state.js';

export const INCIDENT_CAP = 50;

export function recordIncident(rec: NodeRecord, atMs: number, kind: string, detail: string): void {
  rec.incidents = [...rec.incidents, { atMs, kind, detail }].slice(-INCIDENT_CAP);
}

/** Prunes incidents older than the window and sets or clears the lemon flag. */
export function judgeLemon(rec: NodeRecord, nowMs: number, config: HealthConfig): boolean {
  const from = nowMs - config.lemon.windowSec * 1000;
  if (rec.incidents.length > 0 && rec.incidents[0]!.atMs < from) rec.incidents = rec.incidents.filter((i) => i.atMs >= from);
  const lemon = rec.incidents.length >= config.lemon.incidents;
  if (lemon) rec.lemonSinceMs ??= nowMs;
  else delete rec.lemonSinceMs;
  return lemon;
}

// Lookup into the XID catalogue (data in xid-catalog.csv, compiled to catalog.generated.ts).
import { XID_CATALOG } from './catalog.generated.js';
import type { XidCatalogEntry, XidSeverityName } from './catalog-gen.js';

export type { XidCatalogEntry, XidSeverityName } from './catalog-gen.js';

const byXid = new Map<number, XidCatalogEntry>(XID_CATALOG.map((e) => [e.xid, e]));

/** The catalogue has no row for Xids NVIDIA lists as unused or that we never met. */
export function unknownXid(xid: number): XidCatalogEntry {
  return {
    xid, mnemonic: 'UNKNOWN', meaning: 'Xid not in the catalogue', causeClass: 'unknown',
    immediateAction: '', investigatoryAction: '', orchestratorHint: 'log; look the Xid up in the NVIDIA catalogue',
    // Unknown is not harmless: make someone look at it.
    severity: 'warning',
  };
}

export function lookupXid(xid: number): XidCatalogEntry {
  return byXid.get(xid) ?? unknownXid(xid);
}

export function allXids(): readonly XidCatalogEntry[] {
  return XID_CATALOG;
}

export const SEVERITY_ORDER: Record<XidSeverityName, number> = { info: 1, warning: 2, error: 3, critical: 4 };

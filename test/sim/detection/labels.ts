// Ground truth: what was injected, where and when. The evaluation scores every detector
// against these labels and nothing else.
import type { FaultKind } from './scenario.js';

export type Category =
  /** A node's hardware: must be detected; precursor faults should be detected before their XID. */
  | 'hardware'
  /** An XID the node is not to blame for (contained 94, application 13/31/43): no alarm wanted. */
  | 'benign'
  /** A node's own NFS client / NIC: a node fault that looks like a storage one. */
  | 'node-network'
  | 'shared-storage' | 'shared-fabric' | 'shared-management'
  | 'straggler' | 'hang';

export interface Label {
  id: string;
  kind: FaultKind | 'noise-94';
  category: Category;
  node?: string;
  /** Storage target (server:/export) or segment (leaf switch) for shared faults. */
  target?: string;
  /** Nodes a shared fault touches. */
  nodes?: string[];
  job?: string;
  /** The node a hang or straggler should be pinned on (none: nobody to blame). */
  expectedNode?: string;
  /** Onset of the precursor (or of the episode). */
  startMs: number;
  /** The culminating XID, when there is one (reported or not). */
  xidMs?: number;
  xid?: number;
  /** End of the episode (the XID for faults that end in one). */
  endMs: number;
  /** When the node is back in service after repair (alarms until then are this fault's). */
  outUntilMs?: number;
  /** A precursor pattern is present in telemetry before the XID. */
  precursor: boolean;
}

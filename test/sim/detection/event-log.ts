// What the scheduler would have written to the node event logs during a simulated run, for
// the operations report (services/scheduler/src/report): the XIDs as the agents delivered
// them, and the state changes the health monitor makes of each window's decisions (the
// monitor's own pure step, applyHealthDecision) and of operator releases. Plus the run's
// ground truth for the report: the XIDs the scenario injected and that reached the scheduler,
// and the nodes its node faults hit.
import { Node, NodeHostEvent, NodeState, type XidEvent } from '@gantry/proto';
import type { HealthConfig, HealthEvaluation } from '../../../services/scheduler/src/health/index.js';
import { applyHealthDecision } from '../../../services/scheduler/src/health-monitor/decisions.js';
import type { WindowData } from './cluster.js';
import type { Label } from './labels.js';
import type { Scenario } from './scenario.js';

export class SimEventLog {
  readonly events = new Map<string, NodeHostEvent[]>();
  private readonly nodes = new Map<string, Node>();

  constructor(private readonly config: HealthConfig) {}

  private push(node: string, e: NodeHostEvent): void {
    const log = this.events.get(node) ?? [];
    log.push(e);
    this.events.set(node, log);
  }

  private node(name: string): Node {
    return this.nodes.get(name) ?? Node.create({ name, state: NodeState.NODE_STATE_READY });
  }

  private transition(before: Node, to: NodeState, reason: string, time: Date): void {
    this.push(before.name, NodeHostEvent.create({ time, event: { $case: 'transition', transition: { eventId: '', nodeName: before.name, fromState: before.state, toState: to, reason, time } } }));
  }

  /** One window: its XIDs, operator releases, then the detector's decisions for it. */
  record(w: WindowData, out: HealthEvaluation): void {
    const now = new Date(w.nowMs);
    for (const x of w.xids) this.push(x.node, NodeHostEvent.create({ time: x.time, event: { $case: 'xid', xid: x } }));
    for (const op of w.operator) {
      const n = this.node(op.node);
      if (op.action !== 'release' || n.state === NodeState.NODE_STATE_READY) continue;
      this.transition(n, NodeState.NODE_STATE_READY, `operator release: ${op.reason ?? ''}`, now);
      this.nodes.set(n.name, Node.create({ ...n, state: NodeState.NODE_STATE_READY }));
    }
    for (const d of out.nodes) {
      const n = this.node(d.node);
      const u = applyHealthDecision(n, d, this.config, now);
      if (!u) continue;
      if (u.next.state !== n.state) this.transition(n, u.next.state, u.reason, now);
      this.nodes.set(n.name, u.next);
    }
  }
}

export interface ReportTruth {
  /** Injected XIDs that reached the scheduler, by XID number (faults and labelled contained 94s). */
  xids: Map<number, number>;
  /** XIDs the generator also emits as unlabelled noise (application 13/31/43, single row remaps 63): not counted above. */
  unlabelledXids: ReadonlySet<number>;
  /** Labelled node faults (hardware and a node's own network) per node. */
  nodeFaults: Map<string, number>;
}

export const UNLABELLED_NOISE_XIDS: ReadonlySet<number> = new Set([13, 31, 43, 63]);

/** The ground truth the report must recover, from the run's labels (only those inside the run). */
export function reportTruth(sc: Scenario, labels: readonly Label[]): ReportTruth {
  const spec = new Map(sc.faults.map((f) => [f.id, f]));
  const xids = new Map<number, number>();
  const nodeFaults = new Map<string, number>();
  for (const l of labels) {
    if (l.xid !== undefined && !UNLABELLED_NOISE_XIDS.has(l.xid) && spec.get(l.id)?.reportXid !== false) xids.set(l.xid, (xids.get(l.xid) ?? 0) + 1);
    if ((l.category === 'hardware' || l.category === 'node-network') && l.node) nodeFaults.set(l.node, (nodeFaults.get(l.node) ?? 0) + 1);
  }
  return { xids, unlabelledXids: UNLABELLED_NOISE_XIDS, nodeFaults };
}

/** XIDs counted by number, for comparing with the truth. */
export function countXids(xids: Iterable<XidEvent>): Map<number, number> {
  const out = new Map<number, number>();
  for (const x of xids) out.set(x.xid, (out.get(x.xid) ?? 0) + 1);
  return out;
}

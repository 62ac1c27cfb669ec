// `gantry node ...`: list, show (with host telemetry), events, explain, and the operator's
// cordon, uncordon, drain, quarantine and release.
import type { Command } from 'commander';
import { ExplainNodeResponse, GetNodeTelemetryResponse, ListNodeEventsResponse, ListNodesResponse, Node, NodeOperation, type NodeState } from '@gantry/proto';
import { GantryError, status } from '@gantry/sdk';
import { nodeDetail, nodeStateLabel, nodeTable } from '../format.js';
import { nodeEventLine, sortEventsNewestFirst, telemetryDetail } from '../format-telemetry.js';
import { nodeExplanation } from '../format-health.js';
import { flagParser, parseInteger, parseNodeStateFlag, parseSeconds, repeatable } from '../parse.js';
import type { Session } from '../session.js';

/**
 * The earlier telemetry batches the scheduler keeps per node (TELEMETRY_HISTORY_CAP in
 * @gantry/store, which the CLI does not depend on): GetNodeTelemetry refuses more.
 */
const TELEMETRY_HISTORY_KEPT = 64;

/** What GetNodeTelemetry gave: a response, or why there is none (the node has not reported yet, an older gateway). */
type Telemetry = { res: GetNodeTelemetryResponse } | { none: string };

/** Adds `node` and its subcommands to `program` (via .command(), so they inherit its exit and output settings). */
export function addNodeCommands(program: Command, session: Session): void {
  const node = program.command('node').description('inspect GPU nodes');

  node
    .command('list')
    .description('every node: state, free/total GPUs, model, topology, heartbeat age')
    .option('--state <state>', 'only nodes in this state (repeatable)', repeatable(parseNodeStateFlag))
    .action(async (o: { state?: NodeState[] }) => {
      const nodes: Node[] = [];
      for await (const n of session.gantry().listAllNodes({ states: o.state ?? [] })) nodes.push(n);
      if (session.json) session.printJson(ListNodesResponse.toJSON({ nodes, nextPageToken: '' }));
      else session.out(nodeTable(nodes, session.now()));
    });

  node
    .command('show')
    .description("a node's state, topology, labels and GPUs with their allocations, then its latest host telemetry (GPU, NFS, RDMA, NIC)")
    .argument('<name>', 'node name')
    .option('--history <n>', `also show this many earlier telemetry batches, compactly (0..${TELEMETRY_HISTORY_KEPT}: what the scheduler keeps)`, flagParser((t) => parseInteger(t, { min: 0, max: TELEMETRY_HISTORY_KEPT })))
    .action(async (name: string, o: { history?: number }) => {
      const gantry = session.gantry();
      // Both at once; nothing is printed until both answered, so a failure prints one line only.
      const [n, telemetry] = await Promise.all([
        gantry.getNode(name),
        gantry.getNodeTelemetry(name, { history: o.history ?? 0 }).then(
          (res): Telemetry => (res.latest ? { res } : { none: 'no telemetry reported yet' }),
          (err: unknown): Telemetry => {
            // NOT_FOUND for a known node: it has not reported yet (an unknown node fails getNode).
            if (GantryError.is(err, status.NOT_FOUND)) return { none: 'no telemetry reported yet' };
            if (GantryError.is(err, status.UNIMPLEMENTED)) return { none: 'telemetry not available from this gateway' };
            throw err;
          },
        ),
      ]);
      if (session.json) {
        session.printJson({ node: Node.toJSON(n), telemetry: 'res' in telemetry ? GetNodeTelemetryResponse.toJSON(telemetry.res) : null });
        return;
      }
      session.out(nodeDetail(n, session.now()));
      session.out('\n' + ('res' in telemetry ? telemetryDetail(telemetry.res, session.now()) : `Telemetry: ${telemetry.none}`));
    });

  node
    .command('events')
    .description("a node's XID events and state transitions, newest first")
    .argument('<name>', 'node name')
    .option('--limit <n>', 'at most this many events (1..1000; default 100)', flagParser((t) => parseInteger(t, { min: 1, max: 1000 })))
    .action(async (name: string, o: { limit?: number }) => {
      const res = await session.gantry().listNodeEvents(name, { limit: o.limit ?? 0 });
      const events = sortEventsNewestFirst(res.events);
      if (session.json) session.printJson(ListNodeEventsResponse.toJSON({ events }));
      else if (events.length === 0) session.err(`no events for node ${name}`);
      else session.out(events.map(nodeEventLine).join('\n'));
    });

  node
    .command('explain')
    .description('why the node is in its state: health score, each contributing signal with its value and baselines, conditions, decision history')
    .argument('<name>', 'node name')
    .option('--history <n>', 'at most this many decisions (1..200; default 20)', flagParser((t) => parseInteger(t, { min: 1, max: 200 })))
    .action(async (name: string, o: { history?: number }) => {
      const res = await session.gantry().explainNode(name, { history: o.history ?? 0 });
      if (session.json) session.printJson(ExplainNodeResponse.toJSON(res));
      else session.out(nodeExplanation(res, session.now()));
    });

  const operations: Array<[string, NodeOperation, string]> = [
    ['cordon', NodeOperation.NODE_OPERATION_CORDON, 'no new work on the node; running jobs continue'],
    ['uncordon', NodeOperation.NODE_OPERATION_UNCORDON, 'undo a cordon or drain: the node takes work again'],
    ['drain', NodeOperation.NODE_OPERATION_DRAIN, 'no new work; running jobs finish (or move after --move-after), then the node is DRAINED'],
    ['quarantine', NodeOperation.NODE_OPERATION_QUARANTINE, 'out of service now: the jobs on it are handed to recovery as a node fault'],
    ['release', NodeOperation.NODE_OPERATION_RELEASE, "end a quarantine (the detector's or an operator's): READY again"],
  ];
  for (const [verb, op, what] of operations) {
    const cmd = node
      .command(verb)
      .description(what)
      .argument('<name>', 'node name')
      .requiredOption('--reason <text>', 'why: recorded with the node event');
    if (op === NodeOperation.NODE_OPERATION_DRAIN) {
      cmd.option('--move-after <duration>', 'move the jobs still running after this long, e.g. 30m (default: let them finish)', flagParser(parseSeconds));
    }
    cmd.action(async (name: string, o: { reason: string; moveAfter?: number }) => {
      const n = await session.gantry().operateNode(name, op, { reason: o.reason, drainTimeoutSeconds: o.moveAfter ?? 0 });
      if (session.json) session.printJson(Node.toJSON(n));
      else session.out(`node ${n.name}: ${nodeStateLabel(n)}${n.reason ? ` (${n.reason})` : ''}`);
    });
  }
}

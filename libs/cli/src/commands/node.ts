// `gantry node ...`: list, show (with host telemetry) and events.
import type { Command } from 'commander';
import { GetNodeTelemetryResponse, ListNodeEventsResponse, ListNodesResponse, Node, type NodeState } from '@gantry/proto';
import { GantryError, status } from '@gantry/sdk';
import { nodeDetail, nodeTable } from '../format.js';
import { nodeEventLine, sortEventsNewestFirst, telemetryDetail } from '../format-telemetry.js';
import { flagParser, parseInteger, parseNodeStateFlag, repeatable } from '../parse.js';
import type { Session } from '../session.js';

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
    .option('--history <n>', 'also show this many earlier telemetry batches, compactly (0..360)', flagParser((t) => parseInteger(t, { min: 0, max: 360 })))
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
}

// `gantry node ...`: list and show.
import type { Command } from 'commander';
import { ListNodesResponse, Node, type NodeState } from '@gantry/proto';
import { nodeDetail, nodeTable } from '../format.js';
import { parseNodeStateFlag, repeatable } from '../parse.js';
import type { Session } from '../session.js';

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
    .description("a node's state, topology, labels and GPUs with their allocations")
    .argument('<name>', 'node name')
    .action(async (name: string) => {
      const n = await session.gantry().getNode(name);
      if (session.json) session.printJson(Node.toJSON(n));
      else session.out(nodeDetail(n, session.now()));
    });

}

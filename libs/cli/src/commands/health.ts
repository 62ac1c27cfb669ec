// `gantry health`: the cluster as the node health detector last saw it: shared storage and
// fabric faults, nodes needing attention, hangs and stragglers.
import type { Command } from 'commander';
import { GetClusterHealthResponse } from '@gantry/proto';
import { clusterHealthView } from '../format-health.js';
import type { Session } from '../session.js';

export function addHealthCommand(program: Command, session: Session): void {
  program
    .command('health')
    .description('shared storage and fabric faults, nodes needing attention, hangs and stragglers, from the latest health window')
    .action(async () => {
      const res = await session.gantry().getClusterHealth();
      if (session.json) session.printJson(GetClusterHealthResponse.toJSON(res));
      else session.out(clusterHealthView(res, session.now()));
    });
}

import { NodeServiceService, type NodeServiceServer } from '@gantry/proto';
import { invalidArgument, notFound, unary } from '@gantry/service-kit';
import { HealthStore, NodeTelemetryStore } from '@gantry/store';
import { admitTelemetryHistory } from '@gantry/gateway/admission';
import type { SchedulerContext } from '../context.js';

export function nodeService(ctx: SchedulerContext): NodeServiceServer {
  const telemetry = new NodeTelemetryStore(ctx.redis);
  const health = new HealthStore(ctx.redis);
  const mustExist = async (name: string) => {
    if (!(await ctx.nodes.get(name))) throw notFound(`node ${name} not found`);
  };
  return {
    getNodeTelemetry: unary(ctx.log, 'GetNodeTelemetry', async (req) => {
      admitTelemetryHistory(req.history);
      await mustExist(req.name);
      const t = await telemetry.get(req.name, req.history);
      if (!t.latest) throw notFound(`node ${req.name} has reported no telemetry yet`);
      return { latest: t.latest, history: t.history };
    }),
    listNodeEvents: unary(ctx.log, 'ListNodeEvents', async (req) => {
      await mustExist(req.name);
      return { events: await telemetry.events(req.name, req.limit || 100) };
    }),
    listNodes: unary(ctx.log, 'ListNodes', async (req) => {
      // Node names are the cursor: the index is sorted by name, so pages are stable.
      const after = req.pageToken ? Buffer.from(req.pageToken, 'base64url').toString('utf8') : '';
      if (req.pageToken && !after) throw invalidArgument(`page_token ${JSON.stringify(req.pageToken)} is not a token this server issued`);
      const names = (await ctx.nodes.names()).filter((n) => n > after);
      const size = req.pageSize || 500;
      const matching = (await ctx.nodes.getMany(names)).filter((r) => req.states.length === 0 || req.states.includes(r.node.state));
      const page = matching.slice(0, size);
      const more = matching.length > size;
      return { nodes: page.map((r) => r.node), nextPageToken: more ? Buffer.from(page[page.length - 1]!.node.name).toString('base64url') : '' };
    }),
    explainNode: unary(ctx.log, 'ExplainNode', async (req) => {
      const rec = await ctx.nodes.get(req.name);
      if (!rec) throw notFound(`node ${req.name} not found`);
      const events = await telemetry.events(req.name, 200);
      const history = events.flatMap((e) => (e.event?.$case === 'transition' ? [e.event.transition] : [])).slice(0, req.history || 20);
      return { node: rec.node, health: await health.nodeHealth(req.name), history };
    }),
    getClusterHealth: unary(ctx.log, 'GetClusterHealth', async () => (await health.cluster()) ?? { sharedFaults: [], nodes: [], findings: [], nodesEvaluated: 0 }),
    getNode: unary(ctx.log, 'GetNode', async (req) => {
      const rec = await ctx.nodes.get(req.name);
      if (!rec) throw notFound(`node ${req.name} not found`);
      return { node: rec.node };
    }),
  };
}

export { NodeServiceService };

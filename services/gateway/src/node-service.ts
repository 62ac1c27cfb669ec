import { NodeServiceService, type NodeServiceClient, type NodeServiceServer } from '@gantry/proto';
import { invalidArgument, unary, type Logger } from '@gantry/service-kit';
import { call } from './scheduler-client.js';
import { requireToken, validateListNodes } from './admission/validate.js';

export function nodeService(log: Logger, scheduler: NodeServiceClient): NodeServiceServer {
  return {
    listNodes: unary(log, 'ListNodes', (req) => call(scheduler, scheduler.listNodes, validateListNodes(req))),
    getNode: unary(log, 'GetNode', (req) => { requireToken('name', req.name); return call(scheduler, scheduler.getNode, req); }),
    getNodeTelemetry: unary(log, 'GetNodeTelemetry', (req) => {
      requireToken('name', req.name);
      if (req.history > 360) throw invalidArgument(`history must be between 0 and 360, got ${req.history}`);
      return call(scheduler, scheduler.getNodeTelemetry, req);
    }),
    explainNode: unary(log, 'ExplainNode', (req) => {
      requireToken('name', req.name);
      if (req.history > 200) throw invalidArgument(`history must be between 0 and 200, got ${req.history}`);
      return call(scheduler, scheduler.explainNode, req);
    }),
    getClusterHealth: unary(log, 'GetClusterHealth', (req) => call(scheduler, scheduler.getClusterHealth, req)),
    listNodeEvents: unary(log, 'ListNodeEvents', (req) => {
      requireToken('name', req.name);
      if (req.limit > 1000) throw invalidArgument(`limit must be between 0 and 1000, got ${req.limit}`);
      return call(scheduler, scheduler.listNodeEvents, req);
    }),
  };
}

export { NodeServiceService };

import { NodeServiceService, type NodeServiceClient, type NodeServiceServer } from '@gantry/proto';
import { invalidArgument } from '@gantry/service-kit';
import { call } from './scheduler-client.js';
import { admitListNodes, admitTelemetryHistory, admitToken } from './admission/shared.js';
import type { Guard } from './auth/guard.js';

const NODE = (m: string) => `gantry.v1.NodeService/${m}`;

export function nodeService(guard: Guard, scheduler: NodeServiceClient): NodeServiceServer {
  return {
    listNodes: guard.unary(NODE('ListNodes'), (req) => call(scheduler, scheduler.listNodes, admitListNodes(req))),
    getNode: guard.unary(NODE('GetNode'), (req) => { admitToken('name', req.name); return call(scheduler, scheduler.getNode, req); }),
    getNodeTelemetry: guard.unary(NODE('GetNodeTelemetry'), (req) => {
      admitToken('name', req.name);
      admitTelemetryHistory(req.history);
      return call(scheduler, scheduler.getNodeTelemetry, req);
    }),
    explainNode: guard.unary(NODE('ExplainNode'), (req) => {
      admitToken('name', req.name);
      if (req.history > 200) throw invalidArgument(`history must be between 0 and 200, got ${req.history}`);
      return call(scheduler, scheduler.explainNode, req);
    }),
    getClusterHealth: guard.unary(NODE('GetClusterHealth'), (req) => call(scheduler, scheduler.getClusterHealth, req)),
    listNodeEvents: guard.unary(NODE('ListNodeEvents'), (req) => {
      admitToken('name', req.name);
      if (req.limit > 1000) throw invalidArgument(`limit must be between 0 and 1000, got ${req.limit}`);
      return call(scheduler, scheduler.listNodeEvents, req);
    }),
  };
}

export { NodeServiceService };

import { NodeServiceService, type NodeServiceClient, type NodeServiceServer } from '@gantry/proto';
import { unary, type Logger } from '@gantry/service-kit';
import { call } from './scheduler-client.js';
import { requireToken, validateListNodes } from './admission/validate.js';

export function nodeService(log: Logger, scheduler: NodeServiceClient): NodeServiceServer {
  return {
    listNodes: unary(log, 'ListNodes', (req) => call(scheduler, scheduler.listNodes, validateListNodes(req))),
    getNode: unary(log, 'GetNode', (req) => { requireToken('name', req.name); return call(scheduler, scheduler.getNode, req); }),
  };
}

export { NodeServiceService };

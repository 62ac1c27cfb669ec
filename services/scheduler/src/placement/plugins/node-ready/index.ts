// Only READY nodes take new work. The reason is the state itself ("quarantined",
// "draining") because that is what an operator looks for in `gantry job explain`.
import { READY } from '../../cluster-state.js';
import type { ClassFilterPlugin, NodeFilter } from '../../framework/types.js';

export const nodeReady: NodeFilter = (node) => (node.state === READY ? undefined : node.state.toLowerCase());

export const nodeReadyPlugin: ClassFilterPlugin = { name: 'NodeReady', stage: 'class', key: () => '', filter: nodeReady };

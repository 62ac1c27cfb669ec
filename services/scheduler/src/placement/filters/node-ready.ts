// Only READY nodes take new work. The reason is the state itself ("quarantined",
// "draining") because that is what an operator looks for in `gantry job explain`.
import type { NodeFilter } from './types.js';

export const READY = 'READY';

export const nodeReady: NodeFilter = (node) => (node.state === READY ? undefined : node.state.toLowerCase());

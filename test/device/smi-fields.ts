// Prints the agent's nvidia-smi --query-gpu fields (metrics, then inventory), comma-separated,
// one list per line: run.sh records the real driver's answer to exactly these queries.
import { GPU_INVENTORY_FIELDS, GPU_QUERY_FIELDS } from '../../services/node-agent/src/collectors/gpu/query-csv.js';

console.log(GPU_QUERY_FIELDS.join(','));
console.log(GPU_INVENTORY_FIELDS.join(','));

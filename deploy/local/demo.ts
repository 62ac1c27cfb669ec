// `pnpm demo`: brings the local stack up if needed, submits a 2-node x 8-GPU job whose ranks
// print their launcher environment and work for a few seconds, follows its logs, and exits
// 0 when it SUCCEEDED.
import { GantryClient } from '@gantry/sdk';
import { JobState, jobStateName } from '@gantry/proto';
import { up } from './stack.js';

const stack = await up();
console.log(`stack up (gateway ${stack.endpoints.gateway})`);
const client = new GantryClient({ address: stack.endpoints.gateway });
const script = [
  'echo "rank $NODE_RANK of $NNODES on $GANTRY_NODE_NAME: MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT WORLD_SIZE=$WORLD_SIZE LOCAL_WORLD_SIZE=$LOCAL_WORLD_SIZE CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"',
  'for step in 1 2 3; do sleep 1; echo "rank $NODE_RANK step $step/3"; done',
  'echo "rank $NODE_RANK done (job $GANTRY_JOB_ID attempt $GANTRY_ATTEMPT)"',
].join('; ');
try {
  const { job } = await client.submitJob({ name: 'demo', tenant: 'demo', nodes: 2, gpusPerNode: 8, command: ['sh', '-c', script] });
  console.log(`submitted ${job!.id}; following logs`);
  for await (const l of client.streamLogs(job!.id, { follow: true })) console.log(`[node-rank ${l.rank}] ${l.line?.text}`);
  let final = await client.getJob(job!.id);
  for (let i = 0; i < 50 && ![JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED].includes(final.state); i++) {
    await new Promise((r) => setTimeout(r, 100));
    final = await client.getJob(job!.id);
  }
  console.log(`job ${final.id} ${jobStateName(final.state)}: ${final.reason}`);
  process.exitCode = final.state === JobState.JOB_STATE_SUCCEEDED ? 0 : 1;
} catch (err) {
  console.error(`demo: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  client.close();
}

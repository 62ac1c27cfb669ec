// The agent intake thread's entry when the scheduler runs from its TypeScript sources (under
// tsx): a worker thread does not inherit the main thread's loader, so it registers tsx before
// it loads the real entry (workerData.entry). A bundled scheduler starts its bundled entry instead.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);

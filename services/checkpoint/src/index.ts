export { startCheckpointService, serveCheckpoints, type CheckpointServiceHandle } from './server.js';
export { loadCheckpointConfig, checkpointEnv, type CheckpointConfig } from './config.js';
export { CHECKPOINT_SERVICE_NAME } from './checkpoint-service.js';

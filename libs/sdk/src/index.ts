// @gantry/sdk: typed clients for the Gantry gateway and the checkpoint service.
export { GantryClient, type JobSpecInput, type SubmitOptions, type SubmitJobsOptions, type SubmitJobsItem, type LogOptions, type JobFilter, type NodeFilter, type NodeTelemetryOptions, type NodeEventsOptions, type SchedulingConfig, type AuditFilter } from './client.js';
export { loadConfigFile, configFilePath, ConfigFileError, type ClientConfigFile } from './config-file.js';
export {
  CheckpointClient, CHECKPOINT_FORMAT_NAMES, checkpointFormatName, checkpointSpec, checkpointStateName, parseCheckpointFormat, type BeginCheckpointInput, type CheckpointSpecInput,
} from './checkpoint-client.js';
export { StorageClient, type StorageLeaseRequest, type StorageLeaseKind, type AcquireOptions } from './storage.js';
export { GantryError, toGantryError, statusName, status } from './errors.js';
export {
  addDefaults,
  channelCredentials,
  DEFAULT_ADDRESS,
  DEFAULT_TIMEOUT_MS,
  type ClientOptions,
  type ResolvedClientOptions,
  type TlsOptions,
} from './options.js';
export { backoffMs, isRetryable, withRetry, DEFAULT_RETRY_POLICY, type RetryPolicy, type RetryClass, type RetryOptions } from './retry.js';
export type { CallOptions } from './rpc.js';

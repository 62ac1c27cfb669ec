export * from './keys.js';
export * from './errors.js';
export * from './events.js';
export * from './jobs.js';
export * from './nodes.js';
export * from './lease.js';
export * from './outbox.js';
export * from './checkpoints.js';
export { scriptRunner, type ScriptRunner, type ScriptName } from './scripts.js';

export * from './subjects.js';
export * from './streams.js';
export * from './codec.js';
export * from './consumer.js';
export * from './fencing.js';
export * from './nats-auth.js';
export * from './command-signing.js';

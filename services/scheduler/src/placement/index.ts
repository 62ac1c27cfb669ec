export * from './types.js';
export * from './filters.js';
export * from './gang.js';
export * from './cycle.js';

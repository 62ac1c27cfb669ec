// Device backends: the real host (nvidia-smi, /proc, /sys, kmsg) and the simulator.
export * from './types.js';
export * from './nvidia-smi.js';
export * from './smi-loop.js';
export * from './sim/sim-backend.js';
export * from './sim/host-model.js';
export * from './sim/scenario.js';
export * from './sim/kernel-ring.js';

// @gantry/cli as a library: run the CLI in-process (tests, the e2e suite, wrappers).
export { main, buildProgram, type Io, type Output } from './cli.js';
export { UsageError } from './errors.js';

#!/usr/bin/env node
// The `gantry` binary of the packed @gantry/cli (publishConfig.bin): the compiled CLI in dist/,
// built by `pnpm build` (see package.json). In the workspace, bin/gantry.js runs src/ under tsx.
await import('../dist/main.js');

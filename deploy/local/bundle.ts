// One esbuild bundle per Gantry process (the four services and the CLI), for processes that
// start often: a bundle loads in a fraction of the CPU time that compiling the TypeScript
// through tsx takes (the scheduler: ~0.5 CPU-s against ~2.5 on the 2-core development machine),
// which was most of what starting a test stack cost. The bundles are built from the working tree each time they are wanted
// (once per `vitest run` by the e2e tests' test/harness/global-setup.ts, at every `pnpm
// stack:up`), never shipped: production runs the sources under tsx (docs/deploy.md), and the
// agent's installed bundle is `pnpm build:agent`.
//
// What a bundle must keep working, because esbuild moves every module into one file:
// - `import.meta.url` (and `.dirname`, `.filename`): modules find files next to their source
//   with it (the Redis Lua scripts of libs/store, the status page's assets, chart.js for
//   `gantry report --html`). Each module's own source location is written in its place, so
//   those files are read from the checkout, where they are.
// - worker threads: the scheduler's agent intake thread has a bundle of its own
//   (scheduler-intake.mjs), which the scheduler finds through __GANTRY_BUNDLE_DIR__, set
//   here (from sources it starts the .ts entry through tsx instead).
// - `__dirname` / `__filename` in CommonJS dependencies (grpc-health-check finds its .proto
//   files with it): not defined in an ES module, so each such module gets its own.
// - `require` of Node's built-in modules by CommonJS dependencies: a banner makes one.
// Source maps are written beside each bundle, so with --enable-source-maps (serviceCommand
// passes it) a stack trace names the TypeScript source and line.
import { build, type Plugin } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, type ServiceName } from './services.js';

/** Bundled entry points: output name -> source, relative to the repository root. */
export const BUNDLE_ENTRIES: Record<ServiceName | 'gantry' | 'scheduler-intake', string> = {
  'gateway': 'services/gateway/src/main.ts',
  'scheduler': 'services/scheduler/src/main.ts',
  'scheduler-intake': 'services/scheduler/src/agents/intake-worker.ts',
  'checkpoint': 'services/checkpoint/src/main.ts',
  'node-agent': 'services/node-agent/src/main.ts',
  'gantry': 'libs/cli/src/main.ts',
};

const LOADERS: Record<string, 'ts' | 'js'> = { '.ts': 'ts', '.mts': 'ts', '.cts': 'ts', '.js': 'js', '.mjs': 'js', '.cjs': 'js' };

/** Gives every module its own source location (see the top of this file). */
const sourceLocations: Plugin = {
  name: 'source-locations',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async ({ path }) => {
      const loader = LOADERS[extname(path)];
      if (!loader) return undefined;
      let text = await readFile(path, 'utf8');
      const mentionsMeta = /\bimport\.meta\.(?:url|dirname|filename)\b/.test(text);
      const mentionsDir = /\b__(?:dirname|filename)\b/.test(text);
      if (!mentionsMeta && !mentionsDir) return { contents: text, loader };
      if (mentionsMeta) {
        const own = { url: pathToFileURL(path).href, dirname: dirname(path), filename: path };
        text = text.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, (_, key: keyof typeof own) => JSON.stringify(own[key]));
      }
      // Only where the module does not declare them itself (an ES module that derives them
      // from import.meta.url). At the start of the first line (after a #! line), so the
      // source map's lines stay right.
      if (mentionsDir) {
        const decls = Object.entries({ __dirname: dirname(path), __filename: path })
          .filter(([name]) => new RegExp(`\\b${name}\\b`).test(text) && !new RegExp(`\\b(?:var|let|const)\\s+${name}\\b`).test(text))
          .map(([name, value]) => `var ${name} = ${JSON.stringify(value)};`).join(' ');
        const at = /^#!.*\n/.exec(text)?.[0].length ?? 0;
        text = `${text.slice(0, at)}${decls}${text.slice(at)}`;
      }
      return { contents: text, loader };
    });
  },
};

/**
 * Builds every bundle into outDir (`<name>.mjs` and its `.map`), with `extra` entries (name ->
 * source, relative to the repository root) beside them, leaving the `external` packages to be
 * imported at run time; resolves with the paths of BUNDLE_ENTRIES'.
 */
export async function buildBundles(outDir: string, extra: Record<string, string> = {}, external: string[] = []): Promise<Record<keyof typeof BUNDLE_ENTRIES, string>> {
  await build({
    entryPoints: Object.fromEntries(Object.entries({ ...BUNDLE_ENTRIES, ...extra }).map(([name, src]) => [name, join(REPO_ROOT, src)])),
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    // The sources are in the checkout; the maps only need to point at them.
    sourcesContent: false,
    logLevel: 'warning',
    external,
    plugins: [sourceLocations],
    define: { __GANTRY_BUNDLE_DIR__: JSON.stringify(resolve(outDir)) },
    banner: { js: 'import { createRequire as __gantryCreateRequire } from "node:module"; const require = __gantryCreateRequire(import.meta.url);' },
  });
  return Object.fromEntries(Object.keys(BUNDLE_ENTRIES).map((name) => [name, join(outDir, `${name}.mjs`)])) as Record<keyof typeof BUNDLE_ENTRIES, string>;
}

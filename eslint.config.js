// Lint: typescript-eslint's recommended rules with type information, plus no import cycles
// (the layout must keep the data flow one-directional: client -> gateway -> scheduler -> agent).
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'libs/proto/src/gen/**', '.gantry/**', '**/*.mjs', 'libs/cli/bin/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-console': 'off',
    },
  },
  {
    // The agent ships as one bundle (pnpm build:agent): service-kit's index pulls in the gRPC
    // server side (grpc-health-check reads a .proto through __dirname at import), which does
    // not exist in the bundle. The agent takes what it needs from the subpaths.
    files: ['services/node-agent/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: '@gantry/service-kit', message: 'import from a @gantry/service-kit/<module> subpath: the index is not bundle-safe (see test/e2e/agent-bundle.test.ts)' }] }],
    },
  },
);

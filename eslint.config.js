import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * `core/` stays pure (docs/architecture.md): no Node built-ins, no adapters, nothing from the CLI
 * above, and no clock, timer or randomness — time and seeds arrive as data. The import-direction
 * rules between stages are checked by test/unit/architecture.test.ts.
 */
const coreRestrictedImports = {
  paths: builtinModules
    .filter((name) => !name.startsWith('_'))
    .map((name) => ({ name, message: 'core/ is pure: no Node built-ins (docs/architecture.md).' })),
  patterns: [
    { group: ['node:*'], message: 'core/ is pure: no Node built-ins (docs/architecture.md).' },
    {
      group: ['**/io/*', '**/io/**', '../io', './io'],
      message: 'core/ must not import io/ adapters; the adapter calls the core.',
    },
    {
      group: ['**/cli/*', '**/cli/**', '**/main.ts', '**/*-command.ts', '**/config.ts'],
      message:
        'core/ must not import the CLI, a command, main.ts or config.ts (they sit above it).',
    },
  ],
};
const coreMessage = 'core/ takes time and randomness as data (docs/architecture.md).';
const coreRestrictedGlobals = [
  'Date',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'performance',
  'process',
  'crypto',
  'require',
].map((name) => ({ name, message: coreMessage }));

export default tseslint.config(
  { ignores: ['node_modules/**', '.cache/**', 'services/exporter/page/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['services/**/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', coreRestrictedImports],
      'no-restricted-globals': ['error', ...coreRestrictedGlobals],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: coreMessage },
        { object: 'globalThis', message: coreMessage },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: 'ImportExpression', message: 'core/ imports statically, nothing at run time.' },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        document: 'readonly',
        window: 'readonly',
        fetch: 'readonly',
      },
    },
  },
);

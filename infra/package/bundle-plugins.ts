/**
 * esbuild plugins of the bundle (infra/package/bundle.ts) that keep the idle collector light:
 * work its dependencies do when they are imported, which `collect` (and every other command)
 * then pays for in memory and start-up time whether it needs it or not
 * (docs/decisions.md, "A light agent: the shipped collector's memory").
 *
 * - lazyBuiltins: `node:tls` and `node:https` become modules whose members load the real one on
 *   first use. Importing node:tls costs ~3 MiB of heap and ~1 MiB of the node binary's pages
 *   (OpenSSL's tables), and a PLAINTEXT collector never opens a TLS socket; the Kafka client,
 *   the HTTP server and prom-client's push gateway import it at the top of their modules.
 * - lazyKafkaValidators: @platformatic/kafka compiles ~40 JSON-schema validators with ajv when it
 *   is imported (code generation, `new Function`, then JIT compiles of the generated code): ~5 MiB
 *   of heap and a fifth of a second of start-up. Each validator is compiled on its first call
 *   instead, with the same result and the same `errors`.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Plugin } from 'esbuild';

const require = createRequire(import.meta.url);

/** The builtins loaded on first use, by their name without `node:`. */
export const LAZY_BUILTINS = ['tls', 'https'] as const;

const NAMESPACE = 'vfio-lazy-builtin';

/**
 * The module standing in for builtin `name`: a CommonJS module whose every member (the builtin's
 * own keys, read from this Node.js at build time: the bundle runs on the same major version) is a
 * getter that requires the builtin. esbuild's interop copies members as getters too, so neither
 * `import { connect } from 'node:tls'` nor `require('https')` loads the builtin until a member is
 * read.
 */
export function lazyBuiltinSource(name: string): string {
  const members = Object.keys(require(`node:${name}`) as object);
  return [
    `let real;`,
    `const load = () => (real ??= require(${JSON.stringify(`node:${name}`)}));`,
    `for (const name of ${JSON.stringify(members)}) {`,
    `  Object.defineProperty(module.exports, name, { enumerable: true, get: () => load()[name] });`,
    `}`,
  ].join('\n');
}

export function lazyBuiltins(): Plugin {
  const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|')})$`);
  return {
    name: 'vfio-lazy-builtins',
    setup(build) {
      build.onResolve({ filter }, (args) => {
        const name = args.path.replace(/^node:/, '');
        // The stand-in's own require of the builtin stays a real one.
        if (args.namespace === NAMESPACE) return { path: `node:${name}`, external: true };
        return { path: name, namespace: NAMESPACE };
      });
      build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({
        contents: lazyBuiltinSource(args.path),
        loader: 'js',
      }));
    },
  };
}

/** The line of @platformatic/kafka's dist/utils.js that creates its one ajv instance. */
export const KAFKA_AJV_LINE =
  'export const ajv = new Ajv2020({ allErrors: true, coerceTypes: false, strict: true });';

/**
 * Appended after KAFKA_AJV_LINE: `ajv.compile` returns a validator that compiles the schema on
 * its first call and then behaves as ajv's own (same result, `errors` copied after each call).
 * Every keyword the module adds to the instance is there by then.
 */
export const LAZY_COMPILE = `
const __vfioCompile = ajv.compile.bind(ajv);
ajv.compile = (schema) => {
  let compiled;
  const validate = function (data, ...rest) {
    compiled ??= __vfioCompile(schema);
    const valid = compiled.call(this, data, ...rest);
    validate.errors = compiled.errors;
    return valid;
  };
  validate.errors = null;
  validate.schema = schema;
  return validate;
};
`;

/** Rewrites @platformatic/kafka's dist/utils.js; fails the build if the line is not there. */
export function lazyKafkaValidators(): Plugin {
  return {
    name: 'vfio-lazy-kafka-validators',
    setup(build) {
      build.onLoad({ filter: /@platformatic[\\/]kafka[\\/]dist[\\/]utils\.js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (!source.includes(KAFKA_AJV_LINE)) {
          throw new Error(
            `${args.path} no longer holds "${KAFKA_AJV_LINE}": check infra/package/bundle-plugins.ts against this @platformatic/kafka`,
          );
        }
        return {
          contents: source.replace(KAFKA_AJV_LINE, KAFKA_AJV_LINE + LAZY_COMPILE),
          loader: 'js',
        };
      });
    },
  };
}

/** The lines of @platformatic/wasm-utils' dist/bundled.js that instantiate its module at import. */
export const WASM_UTILS_LINES = {
  first: "const wasm = Uint8Array.from(globalThis.atob('",
  exports:
    'const { alloc, crc32c: _crc32c, dealloc, lz4_compress: _lz4Compress, lz4_decompress: _lz4Decompress, memory, snappy_compress: _snappyCompress, snappy_decompress: _snappyDecompress } = instance.exports;\n',
  buffer:
    'let currentBufferLength = 4096;\nlet currentBufferOffset = alloc(currentBufferLength);\nlet currentBuffer = new Uint8Array(memory.buffer, currentBufferOffset, currentBufferLength);\n',
  prepareInput: 'export function prepareInput(data) {\n',
  prepareOutput: 'export function prepareOutput(combined) {\n',
} as const;

/**
 * @platformatic/wasm-utils' bundled module with its WebAssembly module decoded, compiled and
 * instantiated on the first call of one of its functions (each starts with `prepareInput` or
 * `prepareOutput`) instead of at import. Decoding the ~1 MB of base64 ran a loop hot enough for
 * V8 to optimise it with TurboFan at every start, and the instance holds its own memory: an idle
 * collector, which has computed no CRC32C yet, paid both. Throws if the module's lines changed.
 */
export function lazyWasmUtilsSource(source: string): string {
  const { first, exports, buffer, prepareInput, prepareOutput } = WASM_UTILS_LINES;
  const start = source.indexOf(first);
  const end = source.indexOf(buffer);
  if (
    start < 0 ||
    end < start ||
    !source.includes(exports) ||
    !source.includes(prepareInput) ||
    !source.includes(prepareOutput)
  ) {
    throw new Error(
      '@platformatic/wasm-utils/dist/bundled.js no longer holds the lines infra/package/bundle-plugins.ts rewrites: check it against this version',
    );
  }
  const instantiate = source
    .slice(start, end)
    .replace(exports, `(${exports.slice('const '.length, -2)});\n`);
  return [
    source.slice(0, start),
    'let alloc, _crc32c, dealloc, _lz4Compress, _lz4Decompress, memory, _snappyCompress, _snappyDecompress;\n',
    'let currentBufferLength, currentBufferOffset, currentBuffer;\n',
    'function instantiate() {\n',
    'if (memory !== undefined) return;\n',
    instantiate,
    buffer.replaceAll('let ', ''),
    '}\n',
    source
      .slice(end + buffer.length)
      .replace(prepareInput, `${prepareInput}instantiate();\n`)
      .replace(prepareOutput, `${prepareOutput}instantiate();\n`),
  ].join('');
}

export function lazyWasmUtils(): Plugin {
  return {
    name: 'vfio-lazy-wasm-utils',
    setup(build) {
      build.onLoad(
        { filter: /@platformatic[\\/]wasm-utils[\\/]dist[\\/]bundled\.js$/ },
        async (args) => ({
          contents: lazyWasmUtilsSource(await readFile(args.path, 'utf8')),
          loader: 'js',
        }),
      );
    },
  };
}

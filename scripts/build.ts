// `npm run build`: bundles src/main.ts into dist/ with esbuild (docs/adr/0005-bundled-build.md).
//
// One minified ESM bundle starts with 31 MB less RSS than the same code loaded module by module:
// @kubernetes/client-node alone is 24 MB of JavaScript across ~2000 files, and V8 keeps what it
// loads. The cloud SDKs stay outside the bundle, in node_modules, and are loaded on first use
// from small chunks; the build fails if the main chunk ever imports one eagerly.
// Type checking is `npm run typecheck` (tsc), not this script. `--no-minify` keeps names, for
// CPU profiles (`npm run build -- --no-minify`, then `npm run bench -- --no-build ...`).
import { readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const outdir = join(root, 'dist');

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};
/** Loaded lazily, from node_modules, only by credentials that use that cloud. */
const CLOUD_SDK = /^(@aws-sdk\/|@azure\/|google-auth-library$)/;
const cloudSdks = Object.keys(pkg.dependencies).filter((name) => CLOUD_SDK.test(name));
const external = cloudSdks.flatMap((name) => [name, `${name}/*`]);
// The SDKs' own packages, in case src ever names one directly.
external.push('@smithy/*');

rmSync(outdir, { recursive: true, force: true });
const started = performance.now();
const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/main.ts'],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  chunkNames: 'chunks/[name]-[hash]',
  external,
  minify: !process.argv.includes('--no-minify'),
  // Stack traces map back to src/ with NODE_OPTIONS=--enable-source-maps (off by default: the
  // map is ~8 MB once loaded).
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  // Bundled CommonJS (js-yaml, socks, ...) calls require() for Node built-ins.
  banner: {
    js: "import { createRequire as __regcredRequire } from 'node:module'; const require = __regcredRequire(import.meta.url);",
  },
});

const outputs = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith('.js'));
const main = outputs.find(([file]) => file === 'dist/main.js');
if (!main) throw new Error('esbuild wrote no dist/main.js');
// Everything main.js loads before its first line runs: its static imports, transitively.
const eager = new Set<string>();
const visit = (file: string) => {
  for (const imp of result.metafile.outputs[file]?.imports ?? []) {
    if (imp.kind !== 'import-statement' || eager.has(imp.path)) continue;
    eager.add(imp.path);
    visit(imp.path);
  }
};
visit('dist/main.js');
const eagerSdks = [...eager].filter((path) => external.some((e) => matches(e, path)));
if (eagerSdks.length > 0) {
  throw new Error(
    `dist/main.js imports cloud SDKs at start-up (${eagerSdks.join(', ')}): load them with import() where they are used`,
  );
}

// The kubectl plugin (package.json `bin`): one file with nothing outside it but Node's own
// modules, so a copy of it on PATH is `kubectl regcred`.
const plugin = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/kubectl-regcred.ts'],
  outfile: join(outdir, 'kubectl-regcred.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minify: !process.argv.includes('--no-minify'),
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __regcredRequire } from 'node:module'; const require = __regcredRequire(import.meta.url);",
  },
});
for (const [file, output] of Object.entries(plugin.metafile.outputs)) {
  // Optional require()s inside try blocks (ws's utf-8-validate, bufferutil) may stay unresolved.
  const outside = output.imports.filter(
    (imp) => imp.kind !== 'require-call' && !/^node:|^[a-z_]+$/.test(imp.path),
  );
  if (file.endsWith('.js') && outside.length > 0) {
    throw new Error(
      `${file} imports ${outside.map((imp) => imp.path).join(', ')}: the plugin must be one self-contained file`,
    );
  }
  if (file.endsWith('.js')) outputs.push([file, output]);
}

for (const [file, output] of outputs) {
  process.stdout.write(`${relative(root, join(root, file)).padEnd(40)} ${kib(output.bytes)}\n`);
}
process.stdout.write(`built in ${Math.round(performance.now() - started)} ms\n`);

function matches(pattern: string, path: string): boolean {
  return pattern.endsWith('/*') ? path.startsWith(pattern.slice(0, -1)) : path === pattern;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1).padStart(8)} KiB`;
}

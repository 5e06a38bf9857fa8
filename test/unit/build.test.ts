// The artifact the image runs: `npm run build` bundles src/ into dist/main.js, and the cloud SDKs
// stay out of what loads at start-up (docs/adr/0005-bundled-build.md). The cloud-token
// integration tests run this bundle against the cloud fakes; this checks its shape.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDist } from '../support/operator.ts';

const root = join(import.meta.dirname, '..', '..');
const dist = join(root, 'dist');
// Static imports as esbuild writes them (`import{a as b}from"x"`, `import"x"`) and import("x").
const IMPORT = /\bimport\s*(?:[\w$*{}\s,]+?from\s*|\(\s*)?"([^"]+)"/g;
const SDK = /^(@aws-sdk\/|@azure\/|@smithy\/|google-auth-library$)/;

function imports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => m[1] ?? '');
}
function importedSdks(file: string): string[] {
  return imports(file).filter((spec) => SDK.test(spec));
}

describe('npm run build (dist/)', function () {
  this.timeout(60_000);

  before(() => buildDist());

  it('writes one bundle that starts without node_modules for its own code', () => {
    // A copy far from any node_modules: only the cloud SDKs may come from there, and they are
    // not loaded by --help.
    const away = mkdtempSync(join(tmpdir(), 'regcred-dist-'));
    let help: string;
    try {
      cpSync(dist, away, { recursive: true });
      help = execFileSync(process.execPath, [join(away, 'main.js'), '--help'], {
        encoding: 'utf8',
      });
    } finally {
      rmSync(away, { recursive: true, force: true });
    }
    assert.match(help, /^Usage: regcred-operator/);
    const packages = imports(join(dist, 'main.js')).filter(
      (spec) => !spec.startsWith('./') && !isBuiltin(spec),
    );
    assert.deepEqual(packages, [], 'dist/main.js imports packages instead of bundling them');
  });

  it('loads no cloud SDK at start-up: each sits behind its own lazily imported chunk', () => {
    assert.deepEqual(importedSdks(join(dist, 'main.js')), []);
    const chunks = readdirSync(join(dist, 'chunks')).filter((f) => f.endsWith('.js'));
    const byChunk = Object.fromEntries(
      chunks.map((f) => [f.replace(/-[A-Z0-9]+\.js$/, ''), importedSdks(join(dist, 'chunks', f))]),
    );
    assert.deepEqual(
      { ecr: byChunk.ecr?.sort(), gcp: byChunk.gcp, acr: byChunk.acr },
      {
        ecr: ['@aws-sdk/client-ecr', '@aws-sdk/credential-providers'],
        gcp: ['google-auth-library'],
        acr: ['@azure/identity'],
      },
    );
  });
});

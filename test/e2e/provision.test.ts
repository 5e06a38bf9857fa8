// The one provisioning step, as a user meets it: warm, it answers at once; without root, the
// node step stops within seconds, before anything is built, naming the command to run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const script = join(import.meta.dirname, '..', '..', 'scripts', 'provision.sh');

function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolveRun) => {
    execFile(command, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolveRun({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('npm run provision', () => {
  it('answers in under 2 s once everything is built, with a folder per component', async () => {
    const result = await run('bash', [script, 'all']);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.ms < 2_000, `took ${result.ms} ms`);
    const folders = Object.fromEntries(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('=') as [string, string]),
    );
    assert.deepEqual(Object.keys(folders).sort(), [
      'containerd',
      'controlplane',
      'helm',
      'kubelet',
      'pause',
      'registry',
      'runc',
    ]);
    for (const [component, binary] of [
      ['controlplane', 'kube-apiserver'],
      ['kubelet', 'kubelet'],
      ['containerd', 'containerd'],
      ['registry', 'registry'],
      ['registry', 'crane'],
      ['helm', 'helm'],
    ] as const) {
      assert.ok(existsSync(join(folders[component] ?? '', binary)), `${component}: ${binary}`);
    }
    // Every pinned version is part of its folder's name.
    if (!process.env.KUBEBUILDER_ASSETS) {
      assert.match(folders.controlplane ?? '', /kubernetes-v1\.37\.2-etcd-v3\.6\.16$/);
    }
    assert.match(folders.containerd ?? '', /containerd-v2\.4\.2$/);
    assert.match(folders.registry ?? '', /distribution-v3\.1\.2-crane-v0\.22\.1/);
    assert.match(folders.helm ?? '', /helm-v4\.3\.2$/);
  });

  it('stops within seconds without root, before building anything, naming the command', async () => {
    // As the unprivileged user nobody, with a cache of its own that holds nothing yet. nobody
    // may not be able to enter the clone (a checkout under a 0700 folder), so it runs a copy of
    // the script and the wrapper modules it reads its versions from, in a folder nobody can read.
    const copy = mkdtempSync(join(tmpdir(), 'regcred-provision-'));
    cpSync(join(script, '..', 'controlplane'), join(copy, 'controlplane'), { recursive: true });
    cpSync(script, join(copy, 'provision.sh'));
    chmodSync(copy, 0o755);
    const result = await run('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'env',
      'HOME=/nonexistent',
      'REGCRED_CACHE_DIR=/nonexistent/cache',
      'bash',
      join(copy, 'provision.sh'),
      'all',
    ]).finally(() => rmSync(copy, { recursive: true, force: true }));
    assert.notEqual(result.code, 0);
    assert.ok(result.ms < 5_000, `took ${result.ms} ms`);
    assert.match(result.stderr, /need root/);
    assert.match(result.stderr, /sudo env "PATH=\$PATH" npm test/);
    assert.doesNotMatch(result.stderr, /building/);
  });
});

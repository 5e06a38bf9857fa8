import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { startControlPlane } from '../support/controlplane.ts';
import { uniqueName } from '../support/names.ts';
import { waitFor } from '../support/wait.ts';
import { cluster } from './hooks.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the local control plane', () => {
  it('reports the pinned Kubernetes version, not v0.0.0-master', async () => {
    const version = JSON.parse(await cluster.controlPlane.get('/version')) as {
      gitVersion: string;
    };
    assert.match(version.gitVersion, /^v1\.\d+\.\d+$/);
  });

  it('gives a new namespace its default ServiceAccount (kube-controller-manager runs)', async () => {
    const core = cluster.kc.makeApiClient(CoreV1Api);
    const name = uniqueName('cp-sa');
    await core.createNamespace({ body: { metadata: { name } } });
    const sa = await waitFor(
      `ServiceAccount ${name}/default`,
      () => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }),
      (found) => found.metadata?.name === 'default',
      { timeoutMs: 30_000 },
    );
    assert.equal(sa.metadata?.namespace, name);
    await core.deleteNamespace({ name });
  });

  it('leaves no process and no temp dir behind when stopped', async function () {
    this.timeout(120_000);
    const plane = await startControlPlane({ log: () => {} });
    const pids = plane.pids();
    assert.equal(pids.length, 3, 'etcd, kube-apiserver and kube-controller-manager run');
    assert.ok(pids.every(alive));
    await plane.stop();
    const survivors = pids.filter(alive);
    assert.deepEqual(survivors, [], `processes still alive after stop: ${survivors.join(', ')}`);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(plane.dir), false, `${plane.dir} was removed`);
  });
});

describe('the control-plane harness under a signal', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`stops every component and removes its temp dir when its process gets ${signal}`, async function () {
      this.timeout(120_000);
      const { spawn } = await import('node:child_process');
      const { existsSync } = await import('node:fs');
      const { join } = await import('node:path');
      const script = join(import.meta.dirname, '..', '..', 'scripts', 'controlplane.ts');
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'ignore'] });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const line = await new Promise<string>((resolveLine, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolveLine(out.split('\n')[0] ?? '');
        });
        child.on('exit', () => reject(new Error(`the harness exited before it was ready: ${out}`)));
      });
      const info = JSON.parse(line) as { pids: number[]; dir: string };
      assert.equal(info.pids.length, 3);
      assert.ok(info.pids.every(alive), 'all three components run');
      child.kill(signal);
      const code = await exited;
      assert.equal(code, signal === 'SIGINT' ? 130 : 143);
      const survivors = info.pids.filter(alive);
      assert.deepEqual(survivors, [], `processes alive after ${signal}: ${survivors.join(', ')}`);
      assert.equal(existsSync(info.dir), false, `${info.dir} was removed`);
    });
  }
});

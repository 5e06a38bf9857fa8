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

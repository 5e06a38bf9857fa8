import assert from 'node:assert/strict';
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { KubeApiError } from '../../src/kube/rest.ts';
import { SERVICE_ACCOUNT_ATTEMPTS, updateServiceAccount } from '../../src/kube/service-accounts.ts';
import { InMemoryCluster } from '../support/in-memory-cluster.ts';

const addEntry = (sa: V1ServiceAccount) =>
  sa.imagePullSecrets?.some((e) => e.name === 'acme')
    ? undefined
    : { ...sa, imagePullSecrets: [...(sa.imagePullSecrets ?? []), { name: 'acme' }] };

describe('updateServiceAccount: read-modify-write with the resourceVersion', () => {
  it('writes the edit, or nothing when the edit has nothing to change', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default', [{ name: 'theirs' }]);
    const result = await updateServiceAccount(cluster, sa, addEntry);
    assert.equal(result.kind, 'written');
    assert.deepEqual(cluster.accounts.get('t/default')?.imagePullSecrets, [
      { name: 'theirs' },
      { name: 'acme' },
    ]);
    const again = await updateServiceAccount(
      cluster,
      cluster.accounts.get('t/default') as V1ServiceAccount,
      addEntry,
    );
    assert.equal(again.kind, 'unchanged');
  });

  it('re-applies the edit to what another writer left after a 409', async () => {
    const cluster = new InMemoryCluster();
    const stale = cluster.addServiceAccount('t', 'default', []);
    cluster.accounts.set('t/default', {
      ...stale,
      metadata: { ...stale.metadata, resourceVersion: '999' },
      imagePullSecrets: [{ name: 'new-one' }],
    });
    const result = await updateServiceAccount(cluster, stale, addEntry);
    assert.equal(result.kind, 'written');
    assert.deepEqual(cluster.accounts.get('t/default')?.imagePullSecrets, [
      { name: 'new-one' },
      { name: 'acme' },
    ]);
  });

  it('says gone for a ServiceAccount deleted under it', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default', []);
    cluster.accounts.delete('t/default');
    assert.deepEqual(await updateServiceAccount(cluster, sa, addEntry), { kind: 'gone' });
  });

  it(`gives up with a 409 after ${SERVICE_ACCOUNT_ATTEMPTS} conflicts in a row`, async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default', []);
    for (let i = 0; i < SERVICE_ACCOUNT_ATTEMPTS; i++) {
      cluster.failNext((c) => c.verb === 'update', new KubeApiError(409, 'Conflict', 'modified'));
    }
    await assert.rejects(
      updateServiceAccount(cluster, sa, addEntry),
      (e: unknown) => e instanceof KubeApiError && e.conflict,
    );
  });
});

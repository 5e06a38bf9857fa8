import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { stripServiceAccount } from '../../src/kube/cluster-view.ts';
import { SharedValues } from '../../src/kube/shared-values.ts';
import { heapAfterGc } from '../support/heap.ts';

// At 10,000 namespaces with 3 ServiceAccounts each the ServiceAccounts' cache holds 30,000
// entries decoded from their own watch events; those the operator wrote carry the same
// imagePullSecrets and the same record of our entries (an annotation) in every namespace.

function serviceAccountJson(namespace: string, name: string, rv: number): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name,
      namespace,
      uid: randomUUID(),
      resourceVersion: String(rv),
      creationTimestamp: new Date(1_790_000_000_000 + rv * 1000).toISOString().replace('.000', ''),
      annotations: { 'regcred.dev/pull-secrets': 'registry-credential-a,registry-credential-b' },
      managedFields: [
        {
          manager: 'regcred-operator',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-12-07T00:00:00Z',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:imagePullSecrets': {} },
        },
      ],
    },
    imagePullSecrets: [{ name: 'registry-credential-a' }, { name: 'registry-credential-b' }],
  });
}

describe('the ServiceAccounts cache: memory per entry', () => {
  it('keeps what the ServiceAccounts of many namespaces share once', function () {
    this.timeout(60_000);
    const shared = new SharedValues();
    const cache = new Map<string, V1ServiceAccount>();
    const before = heapAfterGc();
    let rv = 1000;
    for (let i = 0; i < 10_000; i++) {
      const namespace = `tenant-namespace-${i}`;
      for (const name of ['default', 'builder', 'deployer']) {
        const sa = stripServiceAccount(
          JSON.parse(serviceAccountJson(namespace, name, rv++)),
          shared,
        );
        cache.set(`${namespace}/${name}`, sa);
      }
    }
    const perEntry = (heapAfterGc() - before) / cache.size;
    assert.equal(cache.size, 30_000);
    // 726 bytes per entry before; ~400 now (the Map entry and its key included).
    assert.ok(perEntry < 500, `${Math.round(perEntry)} bytes per cached ServiceAccount`);
  });
});

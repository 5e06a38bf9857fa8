import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { compactManagedSecret } from '../../src/kube/cluster-view.ts';
import { SharedValues } from '../../src/kube/shared-values.ts';
import { heapAfterGc } from '../support/heap.ts';

// The managed Secrets' cache is the operator's largest: one entry per credential per selected
// namespace (50 credentials over 3,000 namespaces: 75,000). Each entry is decoded from its own
// watch event, so without care every entry carries its own copy of what it shares with the
// others of its credential: the ownerReference, our labels, the type, the data digest.

/** A managed Secret as a watch event carries it (managedFields included), as JSON text. */
function secretJson(cred: { name: string; uid: string }, namespace: string, rv: number): string {
  // As JSON text: timestamps are strings on the wire (V1Secret's types say Date).
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: {
      name: cred.name,
      namespace,
      uid: randomUUID(),
      resourceVersion: String(rv),
      creationTimestamp: new Date(1_790_000_000_000 + rv * 1000).toISOString().replace('.000', ''),
      labels: {
        'app.kubernetes.io/managed-by': 'regcred-operator',
        'regcred.dev/credential': cred.name,
      },
      ownerReferences: [
        {
          apiVersion: 'regcred.dev/v1alpha1',
          kind: 'RegistryCredential',
          name: cred.name,
          uid: cred.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'regcred-operator',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-12-07T00:00:00Z',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:data': { '.': {}, 'f:.dockerconfigjson': {} }, 'f:type': {} },
        },
      ],
    },
    data: {
      '.dockerconfigjson': Buffer.from(
        `{"auths":{"${cred.name}.example":{"auth":"${'x'.repeat(700)}"}}}`,
      ).toString('base64'),
    },
  };
  return JSON.stringify(secret);
}

describe('the managed Secrets cache: memory per entry', () => {
  it('keeps what the entries of one credential share once, not once per namespace', function () {
    this.timeout(60_000);
    const creds = Array.from({ length: 50 }, (_, i) => ({
      name: `registry-credential-${String(i).padStart(2, '0')}`,
      uid: randomUUID(),
    }));
    const namespaces = Array.from({ length: 400 }, (_, i) => `tenant-namespace-${i}`);
    const trimmed = new WeakSet<V1Secret>();
    const shared = new SharedValues();
    const cache = new Map<string, V1Secret>();
    const before = heapAfterGc();
    let rv = 1000;
    for (const namespace of namespaces) {
      for (const cred of creds) {
        const secret = compactManagedSecret(
          JSON.parse(secretJson(cred, namespace, rv++)),
          trimmed,
          shared,
        );
        cache.set(`${namespace}/${cred.name}`, secret);
      }
    }
    const perEntry = (heapAfterGc() - before) / cache.size;
    assert.equal(cache.size, 20_000);
    // 1,074 bytes per entry before; ~400 now (the Map entry and its key included).
    assert.ok(perEntry < 600, `${Math.round(perEntry)} bytes per cached managed Secret`);
  });
});

// One AdmissionReview request as the API server sends it, answered from fake caches: always
// allowed, patched only on CREATE of a Pod, and a namespace the cache has not seen yet waited for.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { API_VERSION, KIND, type RegistryCredential } from '../../src/api/types.ts';
import type { NamespaceInfo } from '../../src/controller/selection.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { type AdmissionCaches, admitPod } from '../../src/webhook/pod-webhook.ts';
import { WebhookMetrics } from '../../src/webhook/webhook-metrics.ts';

const acme: RegistryCredential = {
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'acme', uid: 'u1' },
  spec: {
    namespaceSelector: { matchLabels: { tenant: 'acme' } },
    registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 's' } } }],
  },
};
const teamA: NamespaceInfo = {
  name: 'team-a',
  labels: { tenant: 'acme' },
  annotations: {},
  terminating: false,
};

function caches(known: NamespaceInfo | undefined, later?: NamespaceInfo): AdmissionCaches {
  return {
    namespace: () => known,
    credentials: () => [acme],
    unmanagedSecret: () => null,
    waitForNamespace: async () => later,
  };
}

function request(operation = 'CREATE') {
  return {
    uid: 'req-1',
    operation,
    namespace: 'team-a',
    kind: { kind: 'Pod' },
    object: { metadata: { name: 'app' }, spec: { containers: [{ name: 'app', image: 'x' }] } },
  };
}

const log = createLogger('error');

function decode(patch: string | undefined): unknown {
  return JSON.parse(Buffer.from(patch ?? '', 'base64').toString('utf8'));
}

describe('one Pod admission request', () => {
  it('answers with the request uid, allowed, and a base64 JSON patch', async () => {
    const metrics = new WebhookMetrics(new Registry());
    const response = await admitPod(request(), { caches: caches(teamA), metrics, log });
    assert.equal(response.uid, 'req-1');
    assert.equal(response.allowed, true);
    assert.equal(response.patchType, 'JSONPatch');
    assert.deepEqual(decode(response.patch), [
      { op: 'add', path: '/spec/imagePullSecrets', value: [{ name: 'acme' }] },
    ]);
  });

  it('waits for a namespace created a moment before the Pod', async () => {
    const metrics = new WebhookMetrics(new Registry());
    const response = await admitPod(request(), {
      caches: caches(undefined, teamA),
      metrics,
      log,
    });
    assert.equal(response.patchType, 'JSONPatch');
  });

  it('allows unchanged what it cannot decide: an unknown namespace, an UPDATE, another kind', async () => {
    const metrics = new WebhookMetrics(new Registry());
    const o = { caches: caches(undefined, undefined), metrics, log };
    assert.deepEqual(await admitPod(request(), o), { uid: 'req-1', allowed: true });
    const known = { ...o, caches: caches(teamA) };
    assert.deepEqual(await admitPod(request('UPDATE'), known), { uid: 'req-1', allowed: true });
    assert.deepEqual(await admitPod({ ...request(), kind: { kind: 'Deployment' } }, known), {
      uid: 'req-1',
      allowed: true,
    });
  });
});

// What a tenant controls in a Pod reaches the webhook before any validation: its imagePullPolicy
// must not become a metric label (one series per string), nor count toward PullIsolation.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { API_VERSION, KIND, type RegistryCredential } from '../../src/api/types.ts';
import type { NamespaceInfo } from '../../src/controller/selection.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { memoizedImageMatcher } from '../../src/webhook/image-matcher.ts';
import { type AdmissionCaches, admitPod } from '../../src/webhook/pod-webhook.ts';
import {
  PullPolicyObservations,
  pullIsolationCondition,
} from '../../src/webhook/pull-isolation.ts';
import { WebhookMetrics } from '../../src/webhook/webhook-metrics.ts';

const acme: RegistryCredential = {
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'acme', uid: 'u1', generation: 1 },
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
const caches: AdmissionCaches = {
  namespace: () => teamA,
  credentials: () => [acme],
  unmanagedSecret: () => null,
  waitForNamespace: async () => teamA,
};

function pod(policy: string | undefined) {
  return {
    uid: 'u',
    operation: 'CREATE',
    namespace: 'team-a',
    kind: { kind: 'Pod' },
    object: {
      metadata: { name: 'p' },
      spec: {
        containers: [
          {
            name: 'c',
            image: 'registry.example.com/team/app:1',
            ...(policy === undefined ? {} : { imagePullPolicy: policy }),
          },
        ],
      },
    },
  };
}

describe('a Pod admission with tenant-chosen strings', () => {
  it('5 Pods with junk imagePullPolicy values: the policy label stays within a fixed set', async () => {
    const registry = new Registry();
    const metrics = new WebhookMetrics(registry);
    const observations = new PullPolicyObservations();
    const o = {
      caches,
      metrics,
      log: silentLogger,
      matchesImage: memoizedImageMatcher().matches,
      observe: (uses: Parameters<PullPolicyObservations['observe']>[0]) =>
        observations.observe(uses),
    };
    for (const junk of ['x'.repeat(10_000), 'always', 'Always ', '💥', 'IfNotPresent\n']) {
      await admitPod(pod(junk), o);
    }
    for (const valid of ['Always', 'IfNotPresent', 'Never', undefined])
      await admitPod(pod(valid), o);
    const metric = await registry
      .getSingleMetric('regcred_pod_private_image_pull_policy_total')
      ?.get();
    const policies = (metric?.values ?? []).map((v) => String(v.labels.policy)).sort();
    assert.deepEqual(policies, ['Always', 'IfNotPresent', 'Never', 'other', 'unset']);
    const other = metric?.values.find((v) => v.labels.policy === 'other');
    assert.equal(other?.value, 5);
    // Junk (refused by validation right after) says nothing about isolation either way.
    const onlyJunk = new PullPolicyObservations();
    const junkOnly = {
      ...o,
      observe: (uses: Parameters<PullPolicyObservations['observe']>[0]) => onlyJunk.observe(uses),
    };
    await admitPod(pod('IfNotPresnt'), junkOnly);
    assert.equal(pullIsolationCondition(acme, onlyJunk.of('acme')).reason, 'NoPodsSeen');
  });
});

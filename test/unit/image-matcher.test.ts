// A tenant's Pod images against the webhook's image matching: megabyte-long images (mutating
// admission sees them before validation, dry runs included) cost neither seconds nor memory,
// and the private images of everyone else are still matched afterwards.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { API_VERSION, KIND, type RegistryCredential } from '../../src/api/types.ts';
import type { NamespaceInfo } from '../../src/controller/selection.ts';
import type { LogFields, Logger } from '../../src/observability/logger.ts';
import { memoizedImageMatcher } from '../../src/webhook/image-matcher.ts';
import { type AdmissionCaches, admitPod } from '../../src/webhook/pod-webhook.ts';
import { WebhookMetrics } from '../../src/webhook/webhook-metrics.ts';

function credential(name: string, server: string): RegistryCredential {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, uid: `uid-${name}`, creationTimestamp: new Date(Date.UTC(2026, 0, 1)) },
    spec: {
      namespaceSelector: { matchLabels: { tenant: 'acme' } },
      registries: [{ server, basic: { secretRef: { name: 's' } } }],
      imagePullPolicy: 'Always',
    },
  } as RegistryCredential;
}

const teamA: NamespaceInfo = {
  name: 'team-a',
  labels: { tenant: 'acme' },
  annotations: {},
  terminating: false,
};
const caches: AdmissionCaches = {
  namespace: () => teamA,
  credentials: () => [
    credential('acme', 'registry.example.com'),
    credential('other', 'other.example.com:5000'),
  ],
  unmanagedSecret: () => null,
  waitForNamespace: async () => teamA,
};

function recordingLog(): Logger & { warnings: Array<[string, LogFields | undefined]> } {
  const warnings: Array<[string, LogFields | undefined]> = [];
  const log = {
    warnings,
    error() {},
    warn(message: string, fields?: LogFields) {
      warnings.push([message, fields]);
    },
    info() {},
    debug() {},
    child: () => log,
  };
  return log;
}

function pod(image: string, dryRun = false) {
  return {
    uid: 'u',
    operation: 'CREATE',
    namespace: 'team-a',
    kind: { kind: 'Pod' },
    dryRun,
    object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image }] } },
  };
}

function decode(patch: string | undefined): unknown {
  return patch ? JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) : [];
}

describe('image matching under hostile images', () => {
  it('50 Pods with a 1 MiB image each: fast, under the byte budget, one warning', async function () {
    this.timeout(60_000);
    const log = recordingLog();
    const matcher = memoizedImageMatcher({ log, maxBytes: 1024 * 1024 });
    const o = {
      caches,
      metrics: new WebhookMetrics(new Registry()),
      log,
      matchesImage: matcher.matches,
    };
    const started = performance.now();
    for (let i = 0; i < 50; i++) {
      // A fresh string each time, as JSON.parse of each request body makes it.
      const image = JSON.parse(
        JSON.stringify(`registry.example.com/${i}/${'a-'.repeat(512 * 1024)}`),
      ) as string;
      const response = await admitPod(pod(image, i % 2 === 0), o);
      assert.equal(response.allowed, true);
      // Still given the credential's Secret: only the image matching is skipped.
      assert.deepEqual(decode(response.patch), [
        { op: 'add', path: '/spec/imagePullSecrets', value: [{ name: 'acme' }, { name: 'other' }] },
      ]);
    }
    const elapsed = performance.now() - started;
    // Parsing one such image for one server took ~1 s before; 50 Pods x 2 servers took minutes.
    assert.ok(elapsed < 5_000, `50 hostile Pods took ${elapsed.toFixed(0)} ms`);
    assert.ok(matcher.bytes <= 1024 * 1024, `the cache holds ${matcher.bytes} bytes`);
    assert.equal(log.warnings.length, 1, 'one warning, not one per Pod');
    assert.doesNotMatch(JSON.stringify(log.warnings), /a-a-a/, 'the image is not logged');

    // A real private image is still matched and pulled Always.
    const response = await admitPod(pod('registry.example.com/team/app:1'), o);
    assert.deepEqual(
      (decode(response.patch) as Array<{ path: string }>).map((p) => p.path),
      ['/spec/imagePullSecrets', '/spec/containers/0/imagePullPolicy'],
    );
  });

  it('matches an image among many servers, and an invalid one to none', () => {
    const matcher = memoizedImageMatcher();
    const servers = Array.from({ length: 200 }, (_, i) => `r${i}.example.com`);
    const image = `r199.example.com/${'a-'.repeat(100)}b:1`;
    assert.equal(matcher.matches(image, servers), true);
    assert.equal(matcher.matches('r7.example.com/x', servers), true);
    assert.equal(matcher.matches('elsewhere.example.com/x', servers), false);
    assert.equal(matcher.matches('INVALID//', servers), false);
  });

  it('keeps the cache under its byte budget with many distinct short images', () => {
    const matcher = memoizedImageMatcher({ maxBytes: 64 * 1024, maxEntries: 1_000_000 });
    for (let i = 0; i < 5_000; i++) {
      matcher.matches(`registry.example.com/team/app-${i}-${'x'.repeat(900)}:1`, [
        'registry.example.com',
        'other.example.com',
      ]);
      assert.ok(matcher.bytes <= 64 * 1024);
    }
  });
});

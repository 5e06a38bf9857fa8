// Image cache isolation between tenants on one node, the multi-tenant concern of the Kubernetes
// docs ("Ensure Image Pull Credential Verification"): once tenant A's credentials pulled a
// private image onto a node, may tenant B's Pod, which has no credential for it, run it from the
// node's cache with imagePullPolicy IfNotPresent? Observed here with the real kubelet, against
// the matrix a cluster admin chooses from: the kubelet's KubeletEnsureSecretPulledImages (beta,
// on by default since 1.35), the AlwaysPullImages admission plugin, and a credential's own
// imagePullPolicy: Always applied by the operator's Pod webhook. Runs last (zz): it
// restarts the kubelet and the API server, and puts both back as they were.
import assert from 'node:assert/strict';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { NODE_API_SERVER_FLAGS, type TestNode } from '../support/node.ts';
import type { TestRegistry } from '../support/registry.ts';
import { waitUntil } from '../support/wait.ts';
import { e2eNode } from './hooks.ts';
import { createPod, PULL_UNAUTHORIZED, waitPullRefused, waitRunning } from './pods.ts';
import { newPassword, PullTestbed } from './testbed.ts';
import { WebhookOperator } from './webhook-operator.ts';

describe("image cache isolation: tenant B and the image tenant A's credential pulled", () => {
  let f: Fixtures;
  let node: TestNode;
  let testbed: PullTestbed;
  let registry: TestRegistry;
  let image: string;
  let tenantB: string;
  const robot = { username: 'tenant-a-robot', password: newPassword() };
  const matrix: string[] = [];
  let originalFlags: string[] = [];
  /** Tenant A's credential and the label its namespaces carry. */
  let credentialA = '';
  let tenantA = '';

  before(async () => {
    f = new Fixtures(cluster.kc);
    node = await e2eNode();
    originalFlags = cluster.controlPlane.apiServerFlags;
    testbed = await PullTestbed.create(f);
    registry = await testbed.registry({ [robot.username]: robot.password });
    node.trustRegistry(registry.host, testbed.caFile);
    image = testbed.runImageOn(registry);
    tenantB = await f.namespace('tenant-b');
  });

  after(async function (this: Mocha.Context) {
    this.timeout(180_000);
    if (matrix.length > 0) {
      process.stdout.write(
        `      image cache isolation, as observed:\n${matrix.map((row) => `        ${row}\n`).join('')}`,
      );
    }
    // Put the cluster back: the kubelet's default gates, the API server's own flags.
    await node?.restartKubelet({});
    if (cluster.controlPlane.apiServerFlags.join(' ') !== originalFlags.join(' ')) {
      await cluster.controlPlane.restartApiServerWithFlags(originalFlags);
    }
    await testbed?.close();
  });

  /** Tenant B's Pod for the cached image, IfNotPresent; records and returns what happened. */
  async function tenantBPod(
    row: string,
    options: { imagePullSecrets?: string[] } = {},
  ): Promise<{ ran: boolean; error: string }> {
    const name = await createPod(f.core, tenantB, image, {
      pullPolicy: 'IfNotPresent',
      ...options,
    });
    const pod = await f.core.readNamespacedPod({ namespace: tenantB, name });
    const stored = pod.spec?.containers[0]?.imagePullPolicy;
    try {
      await waitRunning(f.core, tenantB, name);
      matrix.push(`${row}: runs from the cache (stored pull policy ${stored})`);
      return { ran: true, error: '' };
    } catch {
      const refused = await waitPullRefused(f.core, tenantB, name);
      matrix.push(`${row}: refused, ${refused.reason} (stored pull policy ${stored})`);
      return { ran: false, error: refused.error };
    }
  }

  it("tenant A's Pod pulls the private image onto the node with the operator's Secret", async () => {
    const tenant = uniqueName('tenant-a');
    tenantA = tenant;
    const source = uniqueName('tenant-a');
    await f.basicSecret(OPERATOR_NAMESPACE, source, robot.username, robot.password);
    const credential = uniqueName('tenant-a');
    credentialA = credential;
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(credential, 'Ready', 'True');
    const namespace = await f.namespace('tenant-a', { tenant });
    await f.waitPullSecrets(namespace, 'default', (names) => names.includes(credential));
    await waitRunning(f.core, namespace, await createPod(f.core, namespace, image));
    const images = await node.ctr(['images', 'ls', '-q']);
    assert.ok(images.stdout.includes(image), `${image} is in the node's cache`);
    matrix.push("tenant A (the operator's Secret): pulls and runs");
  });

  it('refuses tenant B without a credential: the kubelet checks with the registry first (the default)', async () => {
    const outcome = await tenantBPod('B, no credential, default kubelet');
    assert.equal(outcome.ran, false);
    assert.match(outcome.error, PULL_UNAUTHORIZED, outcome.error);
  });

  it('refuses tenant B with a Secret of its own holding a wrong password', async () => {
    const secret = uniqueName('wrong');
    await cluster.kubectlOk([
      'create',
      'secret',
      'docker-registry',
      secret,
      '-n',
      tenantB,
      `--docker-server=${registry.host}`,
      `--docker-username=${robot.username}`,
      `--docker-password=${newPassword()}`,
    ]);
    const outcome = await tenantBPod('B, own Secret with a wrong password, default kubelet', {
      imagePullSecrets: [secret],
    });
    assert.equal(outcome.ran, false);
    assert.match(outcome.error, PULL_UNAUTHORIZED, outcome.error);
  });

  it('runs tenant B with a Secret of its own holding the same credentials', async () => {
    const secret = uniqueName('same');
    await cluster.kubectlOk([
      'create',
      'secret',
      'docker-registry',
      secret,
      '-n',
      tenantB,
      `--docker-server=${registry.host}`,
      `--docker-username=${robot.username}`,
      `--docker-password=${robot.password}`,
    ]);
    const outcome = await tenantBPod('B, own Secret with the same credentials, default kubelet', {
      imagePullSecrets: [secret],
    });
    assert.equal(outcome.ran, true, 'the same credentials are accepted');
  });

  it('runs tenant B from the cache once KubeletEnsureSecretPulledImages is off (no AlwaysPullImages)', async function () {
    this.timeout(180_000);
    await node.restartKubelet({ KubeletEnsureSecretPulledImages: false });
    const outcome = await tenantBPod(
      'B, no credential, KubeletEnsureSecretPulledImages=false, no AlwaysPullImages',
    );
    assert.equal(outcome.ran, true, 'the cached image ran for a tenant without a credential');
  });

  it("refuses tenant B with that kubelet when tenant A's credential asks for imagePullPolicy Always (the Pod webhook, no AlwaysPullImages)", async function () {
    this.timeout(300_000);
    const webhook = await WebhookOperator.install();
    const [labelKey] = Object.keys(webhook.label);
    try {
      await f.patchCredential(credentialA, { spec: { imagePullPolicy: 'Always' } });
      await f.labelNamespace(tenantB, webhook.label);
      const probe = await f.namespace('isolation-probe', { tenant: tenantA, ...webhook.label });
      await webhook.start(probe, credentialA);
      // The webhook's cache holds the new spec once a dry-run Pod of tenant B gets Always.
      await waitUntil("the webhook to apply the credential's pull policy", async () => {
        const pod = await f.core.createNamespacedPod({
          namespace: tenantB,
          dryRun: 'All',
          body: {
            metadata: { generateName: 'dry-' },
            spec: { containers: [{ name: 'app', image, imagePullPolicy: 'IfNotPresent' }] },
          },
        });
        return pod.spec?.containers[0]?.imagePullPolicy === 'Always';
      });
      const outcome = await tenantBPod(
        "B, no credential, KubeletEnsureSecretPulledImages=false, no AlwaysPullImages, A's credential imagePullPolicy Always (Pod webhook)",
      );
      assert.equal(outcome.ran, false);
      assert.match(outcome.error, PULL_UNAUTHORIZED, outcome.error);
      await f.waitCondition(credentialA, 'PullIsolation', 'True', 'PullPolicyAlways');
      const ready = await f.waitCondition(credentialA, 'Ready', 'True');
      assert.ok(ready.status?.conditions?.some((c) => c.type === 'PullIsolation'));
      await f.core.deleteNamespace({ name: probe });
    } finally {
      await webhook.uninstall();
      if (labelKey) await f.labelNamespace(tenantB, { [labelKey]: null });
      await f.patchCredential(credentialA, { spec: { imagePullPolicy: null } });
    }
  });

  it('refuses tenant B again with the AlwaysPullImages admission plugin, even with that kubelet', async function () {
    this.timeout(180_000);
    await cluster.controlPlane.restartApiServerWithFlags([
      ...NODE_API_SERVER_FLAGS.filter((flag) => !flag.startsWith('--enable-admission-plugins=')),
      '--enable-admission-plugins=NodeRestriction,AlwaysPullImages',
    ]);
    const outcome = await tenantBPod(
      'B, no credential, KubeletEnsureSecretPulledImages=false, AlwaysPullImages',
    );
    assert.equal(outcome.ran, false);
    assert.match(outcome.error, PULL_UNAUTHORIZED, outcome.error);
  });
});

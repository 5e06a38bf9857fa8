// Pods that were created without a credential's Secret and are stuck pulling for good (the
// kubelet never re-reads imagePullSecrets), on the real node (issue #18): with the webhook down
// they are still admitted (failurePolicy Ignore) and the operator recovers them once it is back;
// a Deployment made before its credential existed runs once the credential is created, with
// --evict-stuck-pods; without the flag the Pod only gets an Event, and so does a bare Pod.
import assert from 'node:assert/strict';
import { AppsV1Api, type CoreV1Event, type V1Pod } from '@kubernetes/client-node';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import type { TestRegistry } from '../support/registry.ts';
import { waitFor } from '../support/wait.ts';
import { e2eNode } from './hooks.ts';
import { createPod, podSpec, podState, waitPullRefused } from './pods.ts';
import { newPassword, PullTestbed } from './testbed.ts';
import { WebhookOperator } from './webhook-operator.ts';

describe('Pods stuck pulling without the Secret, on a real node', () => {
  let f: Fixtures;
  let testbed: PullTestbed;
  let registry: TestRegistry;
  let image = '';
  const robot = { username: 'stuck-robot', password: newPassword() };
  const credentials: string[] = [];
  const timings: string[] = [];

  before(async function () {
    this.timeout(120_000);
    f = new Fixtures(cluster.kc);
    const node = await e2eNode();
    testbed = await PullTestbed.create(f);
    registry = await testbed.registry({ [robot.username]: robot.password });
    node.trustRegistry(registry.host, testbed.caFile);
    image = testbed.runImageOn(registry);
  });

  after(async function () {
    this.timeout(120_000);
    if (timings.length > 0) process.stdout.write(`${timings.map((t) => `      ${t}\n`).join('')}`);
    for (const name of credentials) await f.deleteCredential(name).catch(() => undefined);
    await testbed?.close();
  });

  async function credential(tenant: string): Promise<string> {
    const source = uniqueName('stuck');
    await f.basicSecret(OPERATOR_NAMESPACE, source, robot.username, robot.password);
    const name = uniqueName('stuck');
    credentials.push(name);
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    return name;
  }

  async function deployment(namespace: string): Promise<void> {
    await cluster.kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'app' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'stuck' } },
          template: { metadata: { labels: { app: 'stuck' } }, spec: podSpec(image) },
        },
      },
    });
  }

  /** The Deployment's one Pod once it fails pulling. */
  async function stuckPod(namespace: string): Promise<V1Pod> {
    const pod = await waitFor(
      `the Deployment's Pod in ${namespace} to exist`,
      async () =>
        (await f.core.listNamespacedPod({ namespace, labelSelector: 'app=stuck' })).items[0],
      (found) => found !== undefined,
    );
    const name = pod?.metadata?.name ?? '';
    await waitPullRefused(f.core, namespace, name, 120_000);
    return f.core.readNamespacedPod({ namespace, name });
  }

  /** Resolves once a Running Pod other than `replaced` serves the Deployment. */
  async function replacedAndRunning(namespace: string, replaced: string): Promise<V1Pod> {
    const pods = await waitFor(
      `a new Pod in ${namespace} to run`,
      async () => (await f.core.listNamespacedPod({ namespace, labelSelector: 'app=stuck' })).items,
      (items) =>
        items.some((p) => p.metadata?.name !== replaced && podState(p).reason === 'Running'),
      { timeoutMs: 180_000, intervalMs: 250 },
    );
    return pods.find((p) => p.metadata?.name !== replaced) as V1Pod;
  }

  async function podEvents(namespace: string, pod: string): Promise<CoreV1Event[]> {
    return (
      await f.core.listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.name=${pod},reason=MissingPullSecret`,
      })
    ).items;
  }

  it('admits Pods while the webhook is down, and evicts them for recovery once the operator is back', async function () {
    this.timeout(600_000);
    const webhook = await WebhookOperator.install(['--evict-stuck-pods=true']);
    try {
      // Nothing runs: no operator (so no Secret, no ServiceAccount entry), no webhook.
      const tenant = uniqueName('down');
      const name = await credential(tenant);
      const namespace = await f.namespace('down', { tenant, ...webhook.label });
      await deployment(namespace);
      const stuck = await stuckPod(namespace);
      assert.ok(!(stuck.spec?.imagePullSecrets ?? []).some((s) => s.name === name));

      const started = Date.now();
      const probe = await f.namespace('down-probe', { tenant, ...webhook.label });
      await webhook.start(probe, name);
      const running = await replacedAndRunning(namespace, stuck.metadata?.name ?? '');
      timings.push(
        `webhook down, then the operator back: the stuck Deployment ran ${Date.now() - started} ms after the operator started`,
      );
      assert.ok((running.spec?.imagePullSecrets ?? []).some((s) => s.name === name));
      const events = await podEvents(namespace, stuck.metadata?.name ?? '');
      assert.match(events[0]?.message ?? '', /evicted so that ReplicaSet\/app-\w+ recreates it/);
      assert.ok(!(events[0]?.message ?? '').includes(robot.password));
      await f.core.deleteNamespace({ name: namespace });
      await f.core.deleteNamespace({ name: probe });
    } finally {
      await webhook.uninstall();
    }
  });

  it('a Deployment made before its credential runs once the credential exists (--evict-stuck-pods); a bare Pod gets an Event', async function () {
    this.timeout(600_000);
    const webhook = await WebhookOperator.install(['--evict-stuck-pods=true']);
    try {
      const tenant = uniqueName('early');
      const probeTenant = uniqueName('probe');
      const probeCredential = await credential(probeTenant);
      const probe = await f.namespace('early-probe', { tenant: probeTenant, ...webhook.label });
      await webhook.start(probe, probeCredential);
      const namespace = await f.namespace('early', { tenant, ...webhook.label });
      await deployment(namespace);
      const bare = await createPod(f.core, namespace, image);
      const stuck = await stuckPod(namespace);
      await waitPullRefused(f.core, namespace, bare);

      const started = Date.now();
      const name = await credential(tenant);
      const running = await replacedAndRunning(namespace, stuck.metadata?.name ?? '');
      timings.push(
        `a Deployment made before its credential: Running ${Date.now() - started} ms after the credential was created`,
      );
      assert.ok((running.spec?.imagePullSecrets ?? []).some((s) => s.name === name));
      // The bare Pod: nothing would recreate it, so it is only told.
      const told = await waitFor(
        'an Event on the bare Pod',
        () => podEvents(namespace, bare),
        (events) => events.length > 0,
      );
      assert.equal(told[0]?.type, 'Warning');
      assert.match(told[0]?.message ?? '', /nothing recreates this Pod/);
      const still = await f.core.readNamespacedPod({ namespace, name: bare });
      assert.notEqual(podState(still).reason, 'Running');
      await f.core.deleteNamespace({ name: namespace });
      await f.core.deleteNamespace({ name: probe });
    } finally {
      await webhook.uninstall();
    }
  });

  it('without --evict-stuck-pods, the stuck Pod only gets an Event and stays', async function () {
    this.timeout(600_000);
    const webhook = await WebhookOperator.install();
    try {
      const tenant = uniqueName('off');
      const probeTenant = uniqueName('probe');
      const probeCredential = await credential(probeTenant);
      const probe = await f.namespace('off-probe', { tenant: probeTenant, ...webhook.label });
      await webhook.start(probe, probeCredential);
      const namespace = await f.namespace('off', { tenant, ...webhook.label });
      await deployment(namespace);
      const stuck = await stuckPod(namespace);
      await credential(tenant);
      const told = await waitFor(
        'an Event on the stuck Pod',
        () => podEvents(namespace, stuck.metadata?.name ?? ''),
        (events) => events.length > 0,
        { timeoutMs: 60_000 },
      );
      assert.equal(told[0]?.type, 'Warning');
      assert.match(told[0]?.message ?? '', /--evict-stuck-pods/);
      // The Event came from a pass that found the Pod: the same Pod is still there, still stuck.
      const pods = (await f.core.listNamespacedPod({ namespace })).items;
      assert.deepEqual(
        pods.map((p) => p.metadata?.uid),
        [stuck.metadata?.uid],
      );
      assert.notEqual(podState(pods[0] as V1Pod).reason, 'Running');
      await f.core.deleteNamespace({ name: namespace });
      await f.core.deleteNamespace({ name: probe });
    } finally {
      await webhook.uninstall();
    }
  });
});

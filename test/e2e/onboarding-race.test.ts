// The onboarding race, measured on a real node: automation creates a namespace and at once a
// Deployment in it. A Pod the ReplicaSet controller creates before the operator has added its
// entry to the default ServiceAccount gets no imagePullSecrets (admission copies them only at
// creation) and stays in ImagePullBackOff for good; the others run. The count is reported, not
// bounded: closing the race is the Pod admission issue's work.
import assert from 'node:assert/strict';
import { AppsV1Api, type V1Pod } from '@kubernetes/client-node';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import type { TestRegistry } from '../support/registry.ts';
import { waitFor } from '../support/wait.ts';
import { e2eNode } from './hooks.ts';
import { PULL_UNAUTHORIZED, podSpec, podState } from './pods.ts';
import { newPassword, PullTestbed } from './testbed.ts';

const ROUNDS = 100;

describe('the onboarding race on a real node', () => {
  let f: Fixtures;
  let testbed: PullTestbed;
  let registry: TestRegistry;

  before(async () => {
    f = new Fixtures(cluster.kc);
    const node = await e2eNode();
    testbed = await PullTestbed.create(f);
    registry = await testbed.registry({ 'race-robot': newPassword() });
    node.trustRegistry(registry.host, testbed.caFile);
  });

  after(async () => {
    await testbed?.close();
  });

  it(`${ROUNDS} times a namespace and at once a Deployment: Pods made before the ServiceAccount carried the entry stay refused, the rest run`, async function () {
    this.timeout(600_000);
    const password = newPassword();
    await registry.setPassword('race-robot', password);
    const label = uniqueName('race');
    const source = uniqueName('race');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'race-robot', password);
    const credential = uniqueName('race');
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant: label } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(credential, 'Ready', 'True');

    const apps = cluster.kc.makeApiClient(AppsV1Api);
    const image = testbed.runImageOn(registry);
    const namespaces: string[] = [];
    const started = Date.now();
    // As automation would: one tenant after another, the Deployment right after its namespace.
    for (let round = 0; round < ROUNDS; round++) {
      const namespace = uniqueName('race');
      await f.core.createNamespace({
        body: { metadata: { name: namespace, labels: { tenant: label } } },
      });
      await apps.createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name: 'app' },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: 'race' } },
            template: { metadata: { labels: { app: 'race' } }, spec: podSpec(image) },
          },
        },
      });
      namespaces.push(namespace);
    }
    const created = Date.now() - started;

    const outcomes: Array<{ namespace: string; pod: V1Pod; entry: boolean; state: string }> = [];
    for (const namespace of namespaces) {
      const found = await waitFor(
        `the Deployment's Pod in ${namespace} to run or fail pulling`,
        async () => (await f.core.listNamespacedPod({ namespace })).items[0],
        (found) => {
          const state = found ? podState(found) : undefined;
          return (
            state?.reason === 'Running' ||
            state?.reason === 'ErrImagePull' ||
            state?.reason === 'ImagePullBackOff'
          );
        },
        { timeoutMs: 180_000, intervalMs: 250 },
      );
      const pod = found as V1Pod;
      const entry = (pod.spec?.imagePullSecrets ?? []).some((s) => s.name === credential);
      outcomes.push({ namespace, pod, entry, state: podState(pod).reason ?? '' });
    }

    const raced = outcomes.filter((o) => !o.entry);
    process.stdout.write(
      `      onboarding race: ${raced.length} of ${ROUNDS} Pods were created before the default ` +
        `ServiceAccount carried the entry (namespaces and Deployments created in ${created} ms)\n`,
    );
    for (const outcome of outcomes) {
      if (outcome.entry) {
        assert.equal(
          outcome.state,
          'Running',
          `${outcome.namespace}: has the entry but ${outcome.state}`,
        );
      } else {
        assert.notEqual(outcome.state, 'Running', `${outcome.namespace} ran without a pull Secret`);
      }
    }
    // A raced Pod's failure is the registry's 401, and it never recovers by itself: its
    // imagePullSecrets were fixed at creation, though the ServiceAccount has the entry now.
    for (const outcome of raced.slice(0, 3)) {
      const events = await f.core.listNamespacedEvent({
        namespace: outcome.namespace,
        fieldSelector: `involvedObject.name=${outcome.pod.metadata?.name},reason=Failed`,
      });
      const errors = events.items.map((event) => event.message ?? '').join('\n');
      assert.match(errors, PULL_UNAUTHORIZED, errors);
      assert.ok((await f.pullSecretNames(outcome.namespace)).includes(credential));
    }

    await Promise.all(namespaces.map((name) => f.core.deleteNamespace({ name })));
    await f.deleteCredential(credential);
  });
});

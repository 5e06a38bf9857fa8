import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import type { TestRegistry } from '../support/registry.ts';
import { waitFor } from '../support/wait.ts';
import { e2eNode } from './hooks.ts';
import { createPod, PULL_UNAUTHORIZED, waitPullRefused, waitRunning } from './pods.ts';
import { newPassword, PullTestbed } from './testbed.ts';

function pullSecrets(pod: V1Pod): string[] {
  return (pod.spec?.imagePullSecrets ?? []).map((secret) => secret.name ?? '');
}

function app(pod: V1Pod) {
  return pod.status?.containerStatuses?.find((status) => status.name === 'app');
}

describe('Pods on a real node pull with the Secrets the operator wrote', () => {
  let f: Fixtures;
  let testbed: PullTestbed;
  let registry: TestRegistry;
  const robot = { username: 'node-robot', password: newPassword() };
  const ci = { username: 'node-ci', password: newPassword() };
  let tenant: string;
  let credential: string;

  before(async () => {
    f = new Fixtures(cluster.kc);
    const node = await e2eNode();
    testbed = await PullTestbed.create(f);
    registry = await testbed.registry({
      [robot.username]: robot.password,
      [ci.username]: ci.password,
    });
    node.trustRegistry(registry.host, testbed.caFile);

    tenant = uniqueName('node');
    const source = uniqueName('node-basic');
    await f.basicSecret(OPERATOR_NAMESPACE, source, robot.username, robot.password);
    credential = uniqueName('node');
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(credential, 'Ready', 'True');
  });

  after(async () => {
    await testbed?.close();
  });

  /** A new namespace of the tenant, once its default ServiceAccount carries `name`'s entry. */
  async function tenantNamespace(prefix: string, label: string, name: string): Promise<string> {
    const namespace = await f.namespace(prefix, { tenant: label });
    await f.waitPullSecrets(namespace, 'default', (names) => names.includes(name));
    return namespace;
  }

  it("runs a tenant's Pod that names no pull Secret, with a basic source", async () => {
    const namespace = await tenantNamespace('pods-basic', tenant, credential);
    const name = await createPod(f.core, namespace, testbed.runImageOn(registry), {
      pullPolicy: 'Always',
    });
    const pod = await waitRunning(f.core, namespace, name);
    // Admission copied the ServiceAccount's entry; the kubelet pulled the pushed image with it.
    assert.deepEqual(pullSecrets(pod), [credential]);
    assert.equal(app(pod)?.imageID?.split('@')[1], testbed.runImage.manifestDigest);
  });

  it('runs it with a dockerConfig source made by `kubectl create secret docker-registry`', async () => {
    const source = uniqueName('node-dockercfg');
    await cluster.kubectlOk([
      'create',
      'secret',
      'docker-registry',
      source,
      '-n',
      OPERATOR_NAMESPACE,
      `--docker-server=${registry.host}`,
      `--docker-username=${ci.username}`,
      `--docker-password=${ci.password}`,
    ]);
    // A Secret is read as a source only once its owner labels it so (API.md).
    await cluster.kubectlOk([
      'label',
      'secret',
      source,
      '-n',
      OPERATOR_NAMESPACE,
      'regcred.dev/source=true',
    ]);
    const label = uniqueName('node-ci');
    const name = uniqueName('node-ci');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant: label } },
      registries: [{ dockerConfig: { secretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    const namespace = await tenantNamespace('pods-dockercfg', label, name);
    const pod = await waitRunning(
      f.core,
      namespace,
      await createPod(f.core, namespace, testbed.runImageOn(registry), { pullPolicy: 'Always' }),
    );
    assert.deepEqual(pullSecrets(pod), [name]);
    await f.deleteCredential(name);
  });

  it("refuses Pods where the operator wrote nothing: the registry's 401 in the kubelet's pull error", async () => {
    // Not selected by the credential at all.
    const outsider = await f.namespace('pods-outsider');
    // Selected, but annotated regcred.dev/ignore.
    const ignored = await f.namespace('pods-ignored', { tenant }, { 'regcred.dev/ignore': 'true' });
    // Selected once someone else's Secret already holds the credential's name: a Conflict.
    const conflicted = await f.namespace('pods-conflict');
    await f.core.createNamespacedSecret({
      namespace: conflicted,
      body: { metadata: { name: credential }, type: 'Opaque', stringData: { note: 'not ours' } },
    });
    await f.labelNamespace(conflicted, { tenant });
    await waitFor(
      `${credential} to report ${conflicted} in Conflict`,
      () => f.getCredential(credential),
      (cred) =>
        cred.status?.failedNamespaces?.some(
          (failed) => failed.name === conflicted && failed.reason === 'Conflict',
        ) === true,
    );

    for (const namespace of [outsider, ignored, conflicted]) {
      await waitFor(
        `the default ServiceAccount of ${namespace}`,
        () => f.serviceAccount(namespace),
        (sa) => sa !== undefined,
      );
      assert.deepEqual(await f.pullSecretNames(namespace), [], `${namespace} got a pull Secret`);
      const name = await createPod(f.core, namespace, testbed.runImageOn(registry), {
        pullPolicy: 'Always',
      });
      const refused = await waitPullRefused(f.core, namespace, name);
      assert.equal(refused.phase, 'Pending', namespace);
      assert.match(refused.error, PULL_UNAUTHORIZED, `${namespace}: ${refused.error}`);
      if (namespace === outsider)
        process.stdout.write(`      the kubelet's pull error: ${refused.error}\n`);
    }
  });

  it('deleting the RegistryCredential: running Pods keep running, new Pods are refused', async () => {
    const label = uniqueName('node-gone');
    const source = uniqueName('node-gone');
    await f.basicSecret(OPERATOR_NAMESPACE, source, robot.username, robot.password);
    const name = uniqueName('node-gone');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant: label } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    const namespace = await tenantNamespace('pods-gone', label, name);
    const running = await waitRunning(
      f.core,
      namespace,
      await createPod(f.core, namespace, testbed.runImageOn(registry), { pullPolicy: 'Always' }),
    );

    await f.deleteCredential(name);
    await f.waitCredentialGone(name);
    await f.waitSecretGone(namespace, name);
    await f.waitPullSecrets(namespace, 'default', (names) => !names.includes(name));

    const refused = await waitPullRefused(
      f.core,
      namespace,
      await createPod(f.core, namespace, testbed.runImageOn(registry), { pullPolicy: 'Always' }),
    );
    assert.match(refused.error, PULL_UNAUTHORIZED, refused.error);

    const still = await f.core.readNamespacedPod({
      namespace,
      name: running.metadata?.name ?? '',
    });
    assert.equal(still.status?.phase, 'Running');
    assert.equal(app(still)?.containerID, app(running)?.containerID);
    assert.equal(app(still)?.restartCount, 0);
    assert.ok(app(still)?.state?.running, 'the container still runs');
  });
});

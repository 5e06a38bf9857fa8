import assert from 'node:assert/strict';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { waitFor } from '../support/wait.ts';
import { e2eNode } from './hooks.ts';
import { createPod, PULL_UNAUTHORIZED, waitPullRefused, waitRunning } from './pods.ts';
import { newPassword, PullTestbed } from './testbed.ts';

describe('a password rotated at the registry and in the source, on a real node', () => {
  let f: Fixtures;
  let testbed: PullTestbed;

  before(async () => {
    f = new Fixtures(cluster.kc);
    await e2eNode();
    testbed = await PullTestbed.create(f);
  });

  after(async () => {
    await testbed?.close();
  });

  it('new Pods are refused until the fan-out, which the status reports first; then they run', async () => {
    const node = await e2eNode();
    const username = 'rota-node-robot';
    const oldPassword = newPassword();
    const registry = await testbed.registry({ [username]: oldPassword });
    node.trustRegistry(registry.host, testbed.caFile);
    const image = testbed.runImageOn(registry);
    const tenant = uniqueName('rota-node');
    const namespace = await f.namespace('rota-node', { tenant });
    const source = uniqueName('rota-node');
    await f.basicSecret(OPERATOR_NAMESPACE, source, username, oldPassword);
    const name = uniqueName('rota-node');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    await f.waitPullSecrets(namespace, 'default', (names) => names.includes(name));
    const before = await waitRunning(
      f.core,
      namespace,
      await createPod(f.core, namespace, image, { pullPolicy: 'Always' }),
    );

    // The registry stops accepting the old password: a new Pod is refused with it.
    const password = newPassword();
    await registry.setPassword(username, password);
    const stale = await waitPullRefused(
      f.core,
      namespace,
      await createPod(f.core, namespace, image, { pullPolicy: 'Always' }),
    );
    assert.match(stale.error, PULL_UNAUTHORIZED, stale.error);

    // The source is rotated; the status says the fan-out is done before any Pod is tried.
    const resourceVersion = (await f.secret(namespace, name))?.metadata?.resourceVersion;
    await f.setSecretData(OPERATOR_NAMESPACE, source, { password });
    await waitFor(
      `${namespace}/${name} to be rewritten`,
      () => f.secret(namespace, name),
      (secret) => secret?.metadata?.resourceVersion !== resourceVersion,
    );
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.equal(cred.status?.syncedNamespaces, cred.status?.targetNamespaces);
    assert.equal(cred.status?.targetNamespaces, 1);
    assert.ok((await f.dockerConfig(namespace, name))?.auths[registry.host]?.password === password);

    const after = await waitRunning(
      f.core,
      namespace,
      await createPod(f.core, namespace, image, { pullPolicy: 'Always' }),
    );
    assert.equal(after.status?.phase, 'Running');
    // The Pod started with the old password was never disturbed.
    const still = await f.core.readNamespacedPod({ namespace, name: before.metadata?.name ?? '' });
    assert.equal(still.status?.phase, 'Running');
    assert.equal(still.status?.containerStatuses?.[0]?.restartCount, 0);
  });
});

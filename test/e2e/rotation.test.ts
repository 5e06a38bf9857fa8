import assert from 'node:assert/strict';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { waitFor } from '../support/wait.ts';
import { UNAUTHORIZED } from './crane.ts';
import { newPassword, PullTestbed } from './testbed.ts';

describe('a password rotated at the registry and in the source Secret', () => {
  let f: Fixtures;
  let testbed: PullTestbed;

  before(async () => {
    f = new Fixtures(cluster.kc);
    testbed = await PullTestbed.create(f);
  });

  after(async () => {
    await testbed?.close();
  });

  it('reaches the tenant: the new credentials pull, the old ones are refused', async () => {
    const username = 'rota-robot';
    const oldPassword = newPassword();
    const registry = await testbed.registry({ [username]: oldPassword });
    const tenant = uniqueName('rota');
    const namespace = await f.namespace('rota-app', { tenant });
    const source = uniqueName('rota-basic');
    await f.basicSecret(OPERATOR_NAMESPACE, source, username, oldPassword);
    const name = uniqueName('rota');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    const oldAuthFile = await testbed.nodeAuthFile(namespace);
    const before = await testbed.inspect(registry, oldAuthFile);
    assert.equal(before.code, 0, before.stderr);

    const password = newPassword();
    await registry.setPassword(username, password);
    await f.setSecretData(OPERATOR_NAMESPACE, source, { password });
    await waitFor(
      `the node credentials of ${namespace} to carry the new password`,
      () => testbed.nodeCredentials(namespace),
      (credentials) => credentials.get(registry.host)?.password === password,
    );

    const after = await testbed.inspect(registry, await testbed.nodeAuthFile(namespace));
    assert.equal(after.code, 0, after.stderr);
    const stale = await testbed.inspect(registry, oldAuthFile);
    assert.notEqual(stale.code, 0, 'the old password still pulls');
    assert.match(stale.stderr, UNAUTHORIZED);
  });
});

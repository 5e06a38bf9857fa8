import assert from 'node:assert/strict';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import type { TestRegistry } from '../support/registry.ts';
import { UNAUTHORIZED } from './crane.ts';
import { newPassword, PullTestbed } from './testbed.ts';

describe('two tenants, each with its own registry and RegistryCredential', () => {
  let f: Fixtures;
  let testbed: PullTestbed;

  before(async () => {
    f = new Fixtures(cluster.kc);
    testbed = await PullTestbed.create(f);
  });

  after(async () => {
    await testbed?.close();
  });

  /** A registry for one tenant, its user's Secret, a RegistryCredential, and its namespace. */
  async function tenantWithRegistry(
    prefix: string,
  ): Promise<{ registry: TestRegistry; namespace: string; credential: string }> {
    const username = `${prefix}-robot`;
    const password = newPassword();
    const registry = await testbed.registry({ [username]: password });
    const tenant = uniqueName(prefix);
    const namespace = await f.namespace(`${prefix}-app`, { tenant });
    const source = uniqueName(`${prefix}-basic`);
    await f.basicSecret(OPERATOR_NAMESPACE, source, username, password);
    const credential = uniqueName(prefix);
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    return { registry, namespace, credential };
  }

  it("each ServiceAccount pulls from its own registry and is refused by the other's", async () => {
    const alpha = await tenantWithRegistry('alpha');
    const beta = await tenantWithRegistry('beta');
    await f.waitCondition(alpha.credential, 'Ready', 'True');
    await f.waitCondition(beta.credential, 'Ready', 'True');

    for (const [own, other] of [
      [alpha, beta],
      [beta, alpha],
    ] as const) {
      const credentials = await testbed.nodeCredentials(own.namespace);
      assert.deepEqual([...credentials.keys()], [own.registry.host]);
      const authFile = await testbed.authFile(credentials);

      const pulled = await testbed.inspect(own.registry, authFile);
      assert.equal(pulled.code, 0, pulled.stderr);
      const refused = await testbed.inspect(other.registry, authFile);
      assert.notEqual(refused.code, 0, `${own.namespace} pulled from ${other.registry.host}`);
      assert.match(refused.stderr, UNAUTHORIZED);

      // Even presented to the other registry, this tenant's user is unknown there.
      const ownCredential = credentials.get(own.registry.host);
      assert.ok(ownCredential);
      const misused = await testbed.inspect(
        other.registry,
        await testbed.authFile(new Map([[other.registry.host, ownCredential]])),
      );
      assert.notEqual(misused.code, 0, `${other.registry.host} accepted ${own.namespace}'s user`);
      assert.match(misused.stderr, UNAUTHORIZED);
    }
  });
});

import assert from 'node:assert/strict';
import { cluster, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import type { TestRegistry } from '../support/registry.ts';
import { UNAUTHORIZED } from './crane.ts';
import { DEMO_FILE, newPassword, PullTestbed } from './testbed.ts';

describe('a tenant pulls from a TLS + htpasswd registry with the Secret the operator wrote', () => {
  let f: Fixtures;
  let testbed: PullTestbed;
  let registry: TestRegistry;
  const robot = { username: 'acme-robot', password: newPassword() };
  const ci = { username: 'acme-ci', password: newPassword() };
  let credential: string;
  let tenantNamespace: string;

  before(async () => {
    f = new Fixtures(cluster.kc);
    testbed = await PullTestbed.create(f);
    registry = await testbed.registry({
      [robot.username]: robot.password,
      [ci.username]: ci.password,
    });

    const tenant = uniqueName('acme');
    tenantNamespace = await f.namespace('acme-app', { tenant });
    const source = uniqueName('acme-basic');
    await f.basicSecret(OPERATOR_NAMESPACE, source, robot.username, robot.password);
    credential = uniqueName('acme');
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(credential, 'Ready', 'True');
  });

  after(async () => {
    await testbed?.close();
  });

  it("pulls the image as the namespace's default ServiceAccount", async () => {
    assert.deepEqual(await f.pullSecretNames(tenantNamespace), [credential]);
    const authFile = await testbed.nodeAuthFile(tenantNamespace);

    const inspected = await testbed.inspect(registry, authFile);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal(inspected.digest, testbed.image.manifestDigest);

    const pulled = await testbed.pullFile(registry, authFile);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(pulled.content, DEMO_FILE.content);
  });

  it('is served over TLS only to a client that trusts the test CA', async () => {
    const authFile = await testbed.nodeAuthFile(tenantNamespace);
    const result = await testbed.inspectWithoutTestCA(registry, authFile);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /certificate|x509/i);
  });

  it('refuses a namespace the RegistryCredential does not select: it has no credential', async () => {
    const outsider = await f.namespace('outsider');
    const credentials = await testbed.nodeCredentials(outsider);
    assert.equal(credentials.size, 0);

    const result = await testbed.inspect(registry, await testbed.authFile(credentials));
    assert.notEqual(result.code, 0, 'an anonymous client pulled from the registry');
    assert.match(result.stderr, UNAUTHORIZED);
  });

  it("refuses another tenant's Secret for the same registry, whose user it does not know", async () => {
    const tenant = uniqueName('intruder');
    const namespace = await f.namespace('intruder-app', { tenant });
    const source = uniqueName('intruder-basic');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'intruder', newPassword());
    const other = uniqueName('intruder');
    await f.createCredential(other, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: registry.host, basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(other, 'Ready', 'True');
    await f.waitPullSecrets(namespace, 'default', (names) => names.includes(other));

    const credentials = await testbed.nodeCredentials(namespace);
    assert.equal(credentials.get(registry.host)?.username, 'intruder');
    const result = await testbed.inspect(registry, await testbed.authFile(credentials));
    assert.notEqual(result.code, 0, 'a user unknown to the registry pulled from it');
    assert.match(result.stderr, UNAUTHORIZED);
  });

  it('pulls with a dockerConfig source imported from `kubectl create secret docker-registry`', async () => {
    const source = uniqueName('acme-dockercfg');
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
    const tenant = uniqueName('acme-ci');
    const namespace = await f.namespace('acme-ci', { tenant });
    const name = uniqueName('acme-ci');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ dockerConfig: { secretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    await f.waitPullSecrets(namespace, 'default', (names) => names.includes(name));

    const credentials = await testbed.nodeCredentials(namespace);
    assert.equal(credentials.get(registry.host)?.username, ci.username);
    const result = await testbed.inspect(registry, await testbed.authFile(credentials));
    assert.equal(result.code, 0, result.stderr);
  });
});

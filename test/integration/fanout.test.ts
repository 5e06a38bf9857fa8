import assert from 'node:assert/strict';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

describe('fan-out of a basic credential', () => {
  let f: Fixtures;
  before(() => {
    f = new Fixtures(cluster.kc);
  });

  it('writes the Secret into a selected namespace, patches its default ServiceAccount and turns Ready', async () => {
    const tenant = uniqueName('tenant');
    const ns = await f.namespace('fan', { tenant });
    const source = uniqueName('src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-fanout');
    const name = uniqueName('rc');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
    });
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.equal(cred.status?.targetNamespaces, 1);
    assert.equal(cred.status?.syncedNamespaces, 1);
    const config = await f.dockerConfig(ns, name);
    assert.deepEqual(config?.auths['registry.example.com'], {
      username: 'robot',
      password: 's3cr3t-fanout',
      auth: Buffer.from('robot:s3cr3t-fanout').toString('base64'),
    });
    assert.deepEqual(await f.waitPullSecrets(ns, 'default', (n) => n.includes(name)), [name]);
    const { stdout } = await cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      '--timeout=10s',
      `regcred/${name}`,
    ]);
    assert.match(stdout, /condition met/);
  });
});

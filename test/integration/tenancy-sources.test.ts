// Sources and registries as a hostile or careless credential author meets them (issue 14,
// items 5, 7, 8 and 9): a Secret that did not opt in is never copied; status stays writable
// whatever an import brings; registries the kubelet would take for one are refused or
// shadowed, visibly; and an `auth` the kubelet reads is read the same way.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { RegistryCredential, RegistryCredentialSpec } from '../../src/api/types.ts';
import {
  type DockerConfig,
  Fixtures,
  registerCredentialStrings,
  SOURCE_LABELS,
} from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { waitFor } from '../support/wait.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function secretValue(what: string): string {
  const value = `${what}-${randomBytes(8).toString('hex')}`;
  registerCredentialStrings(value);
  return value;
}

describe('tenancy: sources and registries', () => {
  let f: Fixtures;
  const made = {
    credentials: [] as string[],
    namespaces: [] as string[],
    secrets: [] as Array<{ namespace: string; name: string }>,
  };

  before(() => {
    f = new Fixtures(cluster.kc);
  });

  after(async function (this: Mocha.Context) {
    this.timeout(120_000);
    for (const name of made.credentials) await f.deleteCredential(name).catch(() => {});
    for (const name of made.credentials) await f.waitCredentialGone(name).catch(() => {});
    for (const { namespace, name } of made.secrets) {
      await f.core.deleteNamespacedSecret({ namespace, name }).catch(() => {});
    }
    for (const name of made.namespaces) await f.core.deleteNamespace({ name }).catch(() => {});
  });

  async function namespace(prefix: string): Promise<string> {
    const name = await f.namespace(prefix);
    made.namespaces.push(name);
    return name;
  }

  async function credential(spec: RegistryCredentialSpec): Promise<string> {
    const name = uniqueName('rc');
    made.credentials.push(name);
    await f.createCredential(name, spec);
    return name;
  }

  async function pullSecretSource(auths: DockerConfig['auths']): Promise<string> {
    const name = uniqueName('import');
    await f.dockerConfigSecret(OPERATOR_NAMESPACE, name, { auths });
    made.secrets.push({ namespace: OPERATOR_NAMESPACE, name });
    return name;
  }

  async function basicSource(username: string, password: string): Promise<string> {
    const name = uniqueName('basic');
    await f.basicSecret(OPERATOR_NAMESPACE, name, username, password);
    made.secrets.push({ namespace: OPERATOR_NAMESPACE, name });
    return name;
  }

  async function waitEvent(credentialName: string, reason: string): Promise<string> {
    const events = await waitFor(
      `an Event ${reason} on RegistryCredential ${credentialName}`,
      () => f.events(credentialName),
      (list) => list.some((e) => e.reason === reason),
    );
    return events.find((e) => e.reason === reason)?.message ?? '';
  }

  // ---- item 5: sources opt in ----

  it('a credential author cannot copy a Secret that did not opt in as a source, whatever its keys', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = await namespace('exfil');
    // Cloud keys an operator admin keeps beside the sources, not labelled as one.
    const keys = uniqueName('aws-keys');
    const accessKeyId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = secretValue('aws-secret-access-key');
    await f.core.createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: keys },
        type: 'Opaque',
        stringData: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey },
      },
    });
    made.secrets.push({ namespace: OPERATOR_NAMESPACE, name: keys });
    // A pull Secret kept there for another purpose, not labelled either.
    const otherPull = uniqueName('not-a-source');
    await f.core.createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: otherPull },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: {
          '.dockerconfigjson': JSON.stringify({
            auths: { 'internal.example.com': { auth: b64(`ops:${secretValue('ops')}`) } },
          }),
        },
      },
    });
    made.secrets.push({ namespace: OPERATOR_NAMESPACE, name: otherPull });

    const viaBasic = await credential({
      namespaces: [tenant],
      registries: [
        {
          server: 'exfil.example.com',
          basic: {
            secretRef: { name: keys },
            usernameKey: 'AWS_ACCESS_KEY_ID',
            passwordKey: 'AWS_SECRET_ACCESS_KEY',
          },
        },
      ],
    });
    const viaImport = await credential({
      namespaces: [tenant],
      registries: [{ dockerConfig: { secretRef: { name: otherPull } } }],
    });
    for (const [name, secretName] of [
      [viaBasic, keys],
      [viaImport, otherPull],
    ] as const) {
      const refused = await f.waitCondition(name, 'Ready', 'False', 'SourceForbidden');
      const ready = refused.status?.conditions?.find((c) => c.type === 'Ready');
      assert.match(
        ready?.message ?? '',
        new RegExp(
          `Secret ${OPERATOR_NAMESPACE}/${secretName} is not labelled regcred\\.dev/source: "true"`,
        ),
      );
      assert.equal(await f.secret(tenant, name), undefined, `nothing copied into ${tenant}`);
    }

    // The label is the switch: once the owner opts the Secret in, it is a source.
    await f.labelSecret(OPERATOR_NAMESPACE, otherPull, SOURCE_LABELS);
    await f.waitCondition(viaImport, 'Ready', 'True');
    await f.waitDockerConfig(tenant, viaImport, (c) => 'internal.example.com' in c.auths);
  });

  // ---- item 9: auth decoded as the kubelet decodes it ----

  it('imports an auth without base64 padding, as the kubelet reads it', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = await namespace('unpadded');
    // "robot:" and 10 more characters: 16 bytes, so padded base64 would end in "==".
    const password = `${randomBytes(5).toString('hex')}`;
    registerCredentialStrings(password, `robot:${password}`);
    const unpadded = b64(`robot:${password}`).replace(/=+$/, '');
    assert.ok(!unpadded.endsWith('='));
    const source = await pullSecretSource({ 'unpadded.example.com': { auth: unpadded } });
    const name = await credential({
      namespaces: [tenant],
      registries: [{ dockerConfig: { secretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    const written = await f.waitDockerConfig(tenant, name, () => true);
    assert.deepEqual(written?.auths['unpadded.example.com'], {
      username: 'robot',
      password,
      auth: b64(`robot:${password}`),
    });
  });

  // ---- item 8: registries distinct as the kubelet sees them ----

  it('refuses two servers the kubelet folds into one key, naming both (InvalidSpec)', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = await namespace('collide');
    const source = await basicSource('robot', secretValue('collide'));
    // Different strings, so the CRD's exact-match rule lets them through.
    const name = await credential({
      namespaces: [tenant],
      registries: [
        { server: 'registry.example.com:5000', basic: { secretRef: { name: source } } },
        {
          server: 'https://registry.example.com:5000/v2/',
          basic: { secretRef: { name: source } },
        },
      ],
    });
    const cred = await f.waitCondition(name, 'Ready', 'False', 'InvalidSpec');
    const message = cred.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '';
    assert.match(message, /spec\.registries\[0\]\.server registry\.example\.com:5000/);
    assert.match(
      message,
      /spec\.registries\[1\]\.server https:\/\/registry\.example\.com:5000\/v2\//,
    );
    assert.equal(await f.secret(tenant, name), undefined);
    await waitEvent(name, 'InvalidSpec');
  });

  it('an imported key that collides with an explicit server loses to it, is marked shadowed, and an Event says so', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = await namespace('shadow');
    const explicitPassword = secretValue('explicit');
    const basic = await basicSource('robot', explicitPassword);
    const importedPassword = secretValue('imported');
    const otherPassword = secretValue('other');
    const imported = await pullSecretSource({
      // The same key exactly, and the same registry written as the kubelet also accepts it.
      'registry.example.com:5000': { auth: b64(`importer:${importedPassword}`) },
      'https://registry.example.com:5000/v2/': { auth: b64(`importer:${importedPassword}`) },
      'other.example.com': { auth: b64(`other:${otherPassword}`) },
    });
    // The import is listed last: before, it silently replaced the explicit entry.
    const name = await credential({
      namespaces: [tenant],
      registries: [
        { server: 'registry.example.com:5000', basic: { secretRef: { name: basic } } },
        { dockerConfig: { secretRef: { name: imported } } },
      ],
    });
    const cred = await f.waitCondition(name, 'Ready', 'True');
    const written = await f.waitDockerConfig(tenant, name, () => true);
    assert.deepEqual(Object.keys(written?.auths ?? {}).sort(), [
      'other.example.com',
      'registry.example.com:5000',
    ]);
    assert.equal(written?.auths['registry.example.com:5000']?.password, explicitPassword);

    const byServer = (status: RegistryCredential['status']) =>
      Object.fromEntries((status?.registries ?? []).map((r) => [`${r.source} ${r.server}`, r]));
    const registries = byServer(cred.status);
    assert.equal(registries['basic registry.example.com:5000']?.shadowed, undefined);
    assert.equal(registries['dockerConfig registry.example.com:5000']?.shadowed, true);
    assert.equal(registries['dockerConfig https://registry.example.com:5000/v2/']?.shadowed, true);
    assert.equal(registries['dockerConfig other.example.com']?.shadowed, undefined);
    const credentialsReady = cred.status?.conditions?.find((c) => c.type === 'CredentialsReady');
    assert.match(credentialsReady?.message ?? '', /2 imported keys left out/);
    assert.match(await waitEvent(name, 'RegistryShadowed'), /2 imported keys left out/);
  });

  // ---- item 7: status always writable ----

  it('an imported key longer than status allows still reaches a visible condition and an Event', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = await namespace('longkey');
    const longKey = `registry.example.com/${'team-'.repeat(120)}app`;
    assert.ok(longKey.length > 512);
    const source = await pullSecretSource({
      [longKey]: { auth: b64(`robot:${secretValue('long')}`) },
    });
    const name = await credential({
      namespaces: [tenant],
      registries: [{ dockerConfig: { secretRef: { name: source } } }],
    });
    // `kubectl wait` is how users and scripts see it.
    const waited = await cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      `registrycredential/${name}`,
      '--timeout=60s',
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    const cred = await f.waitCondition(name, 'Ready', 'True');
    const shown = cred.status?.registries?.[0]?.server ?? '';
    assert.equal(Array.from(shown).length, 512);
    assert.ok(shown.endsWith('…') && longKey.startsWith(shown.slice(0, -1)));
    const written = await f.waitDockerConfig(tenant, name, () => true);
    assert.deepEqual(
      Object.keys(written?.auths ?? {}),
      [longKey],
      'the Secret keeps the key whole',
    );
    await waitEvent(name, 'Ready');
  });

  it('counts every failed namespace and names the listed namespaces that do not exist', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const synced = await namespace('counted');
    const conflicted = await namespace('counted');
    const missing = uniqueName('no-such-ns');
    const source = await basicSource('robot', secretValue('counted'));
    const name = uniqueName('rc');
    // Someone else's Secret under the credential's name: that namespace fails with Conflict.
    await f.core.createNamespacedSecret({
      namespace: conflicted,
      body: { metadata: { name }, type: 'Opaque', stringData: { note: 'not ours' } },
    });
    made.credentials.push(name);
    await f.createCredential(name, {
      namespaces: [synced, conflicted, missing],
      registries: [{ server: 'counted.example.com', basic: { secretRef: { name: source } } }],
    });
    const cred = await f.waitCondition(name, 'Ready', 'False', 'Conflict');
    assert.equal(cred.status?.failedNamespaceCount, 1);
    assert.deepEqual(
      cred.status?.failedNamespaces?.map((x) => x.name),
      [conflicted],
    );
    assert.deepEqual(cred.status?.missingNamespaces, [missing]);
  });

  it('imports totalling more than 1024 servers still reach a visible condition and an Event', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const tenant = await namespace('manykeys');
    const auth = b64(`robot:${secretValue('many')}`);
    const importOf = (part: string) =>
      pullSecretSource(
        Object.fromEntries(
          Array.from({ length: 600 }, (_, i) => [`r${i}.${part}.example.com`, { auth }]),
        ),
      );
    const first = await importOf('one');
    const second = await importOf('two');
    const name = await credential({
      namespaces: [tenant],
      registries: [
        { dockerConfig: { secretRef: { name: first } } },
        { dockerConfig: { secretRef: { name: second } } },
      ],
    });
    const waited = await cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      `registrycredential/${name}`,
      '--timeout=90s',
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.ok((cred.status?.registries?.length ?? 0) < 1024);
    const credentialsReady = cred.status?.conditions?.find((c) => c.type === 'CredentialsReady');
    assert.match(
      credentialsReady?.message ?? '',
      new RegExp(`status\\.registries lists ${cred.status?.registries?.length} of 1200`),
    );
    const written = await f.waitDockerConfig(tenant, name, () => true);
    assert.equal(Object.keys(written?.auths ?? {}).length, 1200);
    await waitEvent(name, 'Ready');
  });
});

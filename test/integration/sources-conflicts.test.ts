// Where credentials come from and who owns what: user imagePullSecrets entries and another
// writer on the same ServiceAccounts, Secrets the operator does not manage, two
// RegistryCredentials wanting one Secret, source rotation, deletion, forbidden and malformed
// sources, dockerConfig imports, and the Events a user reads with `kubectl describe`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1LocalObjectReference,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import {
  ADOPT_ANNOTATION,
  API_VERSION,
  CREDENTIAL_LABEL,
  KIND,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
  type RegistryCredentialSpec,
} from '../../src/api/types.ts';
import { type DockerConfig, Fixtures, SOURCE_LABELS } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { allOperatorLogs } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

const SERVER = 'registry.example.com';

function basicEntry(username: string, password: string) {
  return {
    username,
    password,
    auth: Buffer.from(`${username}:${password}`).toString('base64'),
  };
}

/** True when the Secret's dockerconfigjson holds exactly these credentials for SERVER. */
function holds(username: string, password: string): (config: DockerConfig) => boolean {
  const want = basicEntry(username, password);
  return (config) => {
    const got = config.auths[SERVER];
    return (
      Object.keys(config.auths).length === 1 &&
      got?.username === want.username &&
      got.password === want.password &&
      got.auth === want.auth
    );
  };
}

function count(names: readonly string[], name: string): number {
  return names.filter((n) => n === name).length;
}

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

/** A value nobody else would write: found anywhere, it leaked from this test's Secret. */
function leak(what: string): string {
  return `leak-${what}-${randomBytes(8).toString('hex')}`;
}

function b64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** Total reconciles the suite's operator has finished, from its /metrics. */
async function reconcilesDone(): Promise<number> {
  const text = await cluster.operator.metrics();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('controller_runtime_reconcile_total{')) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

describe('credential sources and conflicts', () => {
  let f: Fixtures;
  // What each test made, undone in this order: credentials first (their cleanup finalizer
  // needs the namespaces and ServiceAccounts), then source Secrets, then namespaces.
  const made = {
    credentials: [] as string[],
    secrets: [] as Array<{ namespace: string; name: string }>,
    namespaces: [] as string[],
  };

  before(() => {
    f = new Fixtures(cluster.kc);
  });

  afterEach(async function (this: Mocha.Context) {
    this.timeout(120_000);
    const errors: unknown[] = [];
    const undo = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        if (statusCode(error) !== 404) errors.push(error);
      }
    };
    for (const name of made.credentials.splice(0)) {
      await undo(() => f.deleteCredential(name));
      await undo(() => f.waitCredentialGone(name));
    }
    for (const { namespace, name } of made.secrets.splice(0)) {
      await undo(() => f.core.deleteNamespacedSecret({ namespace, name }));
    }
    for (const name of made.namespaces.splice(0)) {
      await undo(() => f.core.deleteNamespace({ name }));
    }
    if (errors.length > 0) throw errors[0];
  });

  // ---- arrange, with cleanup registered for everything made ----

  async function namespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
    const name = await f.namespace(prefix, labels);
    made.namespaces.push(name);
    return name;
  }

  async function secret(namespace: string, body: V1Secret): Promise<V1Secret> {
    const created = await f.core.createNamespacedSecret({ namespace, body });
    made.secrets.push({ namespace, name: created.metadata?.name ?? '' });
    return created;
  }

  async function basicSource(
    username: string,
    password: string,
    namespace = OPERATOR_NAMESPACE,
  ): Promise<string> {
    const name = uniqueName('src');
    await f.basicSecret(namespace, name, username, password);
    made.secrets.push({ namespace, name });
    return name;
  }

  async function credential(
    name: string,
    spec: RegistryCredentialSpec,
  ): Promise<RegistryCredential> {
    const created = await f.createCredential(name, spec);
    made.credentials.push(name);
    return created;
  }

  function basicRegistry(source: string, namespace?: string) {
    return {
      server: SERVER,
      basic: { secretRef: namespace ? { name: source, namespace } : { name: source } },
    };
  }

  function waitServiceAccount(ns: string, name = 'default'): Promise<V1ServiceAccount | undefined> {
    return waitFor(
      `ServiceAccount ${ns}/${name} to exist`,
      () => f.serviceAccount(ns, name),
      (sa) => sa !== undefined,
    );
  }

  /** Sets a ServiceAccount's imagePullSecrets as a user would (read, change, replace). */
  async function setPullSecrets(
    ns: string,
    name: string,
    entries: V1LocalObjectReference[],
    extra: Partial<V1ServiceAccount> = {},
  ): Promise<V1ServiceAccount> {
    for (;;) {
      const sa = await waitServiceAccount(ns, name);
      try {
        return await f.core.replaceNamespacedServiceAccount({
          namespace: ns,
          name,
          body: { ...sa, ...extra, imagePullSecrets: entries },
        });
      } catch (error) {
        if (statusCode(error) !== 409) throw error;
      }
    }
  }

  function waitStatus(
    name: string,
    what: string,
    accept: (cred: RegistryCredential) => boolean,
    timeoutMs = 60_000,
  ): Promise<RegistryCredential> {
    return waitFor(
      `RegistryCredential ${name}: ${what}`,
      () => f.getCredential(name),
      (cred) => cred.status?.observedGeneration === cred.metadata.generation && accept(cred),
      { timeoutMs },
    );
  }

  /** Touches the credential (no spec change) and waits until a reconcile has finished since. */
  async function touchAndWaitReconcile(name: string, value: string): Promise<void> {
    const before = await reconcilesDone();
    await f.patchCredential(name, {
      metadata: { annotations: { 'test.regcred.dev/touch': value } },
    });
    await waitUntil(
      `a reconcile after touching ${name}`,
      async () => (await reconcilesDone()) > before,
    );
  }

  async function assertHolds(
    ns: string,
    secretName: string,
    username: string,
    password: string,
  ): Promise<void> {
    const config = await f.dockerConfig(ns, secretName);
    assert.ok(
      config !== undefined && holds(username, password)(config),
      `Secret ${ns}/${secretName} should hold ${username}'s credentials: ${JSON.stringify(config)}`,
    );
  }

  function condition(cred: RegistryCredential, type: 'Ready' | 'CredentialsReady' | 'Synced') {
    return cred.status?.conditions?.find((c) => c.type === type);
  }

  // ---- ServiceAccount entries ----

  it('keeps user imagePullSecrets entries in order and never duplicates its own over repeated reconciles', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const ns = await namespace('entries', { tenant });
    await setPullSecrets(ns, 'default', [{ name: 'a' }, { name: 'b' }]);
    const source = await basicSource('robot', 'entries-pass');
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(source)],
    });

    await f.waitCondition(name, 'Ready', 'True');
    assert.deepEqual(await f.waitPullSecrets(ns, 'default', (n) => n.includes(name)), [
      'a',
      'b',
      name,
    ]);
    const settled = await f.serviceAccount(ns);

    for (let i = 1; i <= 3; i++) await touchAndWaitReconcile(name, `touch-${i}`);
    const before = await reconcilesDone();
    await f.labelNamespace(ns, { unrelated: 'relabelled' });
    await waitUntil('a reconcile after relabelling', async () => (await reconcilesDone()) > before);
    await touchAndWaitReconcile(name, 'touch-last');

    const after = await f.serviceAccount(ns);
    assert.deepEqual(
      (after?.imagePullSecrets ?? []).map((e) => e.name),
      ['a', 'b', name],
    );
    // A reconcile that finds nothing to change writes nothing.
    assert.equal(after?.metadata?.resourceVersion, settled?.metadata?.resourceVersion);
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.equal(cred.status?.syncedNamespaces, 1);
  });

  it('changes nothing but its own entry on a ServiceAccount a user configured', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const ns = await namespace('safields', { tenant });
    await setPullSecrets(ns, 'default', [{ name: 'a' }], {
      automountServiceAccountToken: false,
    });
    const source = await basicSource('robot', 'safields-pass');
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(source)],
    });

    await f.waitCondition(name, 'Ready', 'True');
    await f.waitPullSecrets(ns, 'default', (n) => n.includes(name));
    const sa = await f.serviceAccount(ns);
    assert.deepEqual(
      (sa?.imagePullSecrets ?? []).map((e) => e.name),
      ['a', name],
    );
    assert.equal(
      sa?.automountServiceAccountToken,
      false,
      'the user set automountServiceAccountToken: false on the ServiceAccount; the operator dropped it',
    );
  });

  it('loses nothing when a second client edits the same ServiceAccounts while it works', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const namespaces = [
      await namespace('busy', { tenant }),
      await namespace('busy', { tenant }),
      await namespace('busy', { tenant }),
    ];
    const accounts: Array<{ ns: string; sa: string }> = [];
    for (const ns of namespaces) {
      await f.core.createNamespacedServiceAccount({
        namespace: ns,
        body: { metadata: { name: 'builder' }, imagePullSecrets: [{ name: 'team' }] },
      });
      await setPullSecrets(ns, 'default', [{ name: 'team' }]);
      accounts.push({ ns, sa: 'default' }, { ns, sa: 'builder' });
    }
    const source = await basicSource('robot', 'busy-pass-1');
    const name = uniqueName('rc');

    // The other client: read, swap other-(N-1) for other-N, replace with the resourceVersion
    // it read, and on 409 start over from a fresh read. It runs at least MIN_ROUNDS rounds
    // per ServiceAccount and keeps going (bounded) until the operator's work below is done.
    const MIN_ROUNDS = 40;
    const MAX_ROUNDS = 2_000;
    const other = cluster.kc.makeApiClient(CoreV1Api);
    let operatorWorkDone = false;
    const writer = async ({ ns, sa }: { ns: string; sa: string }) => {
      let round = 0;
      let conflicts = 0;
      let sawOurs = 0;
      while (round < MIN_ROUNDS || (!operatorWorkDone && round < MAX_ROUNDS)) {
        round += 1;
        for (;;) {
          const current = await other.readNamespacedServiceAccount({ namespace: ns, name: sa });
          const entries = (current.imagePullSecrets ?? []).filter(
            (e) => e.name !== `other-${round - 1}`,
          );
          if (entries.some((e) => e.name === name)) sawOurs += 1;
          entries.push({ name: `other-${round}` });
          try {
            await other.replaceNamespacedServiceAccount({
              namespace: ns,
              name: sa,
              body: { ...current, imagePullSecrets: entries },
            });
            break;
          } catch (error) {
            if (statusCode(error) !== 409) throw error;
            conflicts += 1;
          }
        }
      }
      return { ns, sa, last: `other-${round}`, conflicts, sawOurs };
    };
    const writers = Promise.all(accounts.map(writer));
    // If a writer fails, stop the operator-side waits from hiding it behind a timeout.
    let writerError: unknown;
    writers.catch((error: unknown) => {
      writerError = error;
    });

    try {
      await credential(name, {
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: ['*'],
        registries: [basicRegistry(source)],
      });
      for (const ns of namespaces) {
        await f.waitDockerConfig(ns, name, holds('robot', 'busy-pass-1'));
      }
      for (const password of ['busy-pass-2', 'busy-pass-3']) {
        await f.setSecretData(OPERATOR_NAMESPACE, source, { password });
        for (const ns of namespaces) {
          await f.waitDockerConfig(ns, name, holds('robot', password));
        }
        if (writerError) throw writerError;
      }
    } finally {
      operatorWorkDone = true;
    }
    const results = await writers;
    assert.ok(
      results.some((r) => r.sawOurs > 0),
      'the second client never saw the operator entry: the two did not overlap',
    );

    for (const { ns, sa, last } of results) {
      const names = await f.waitPullSecrets(
        ns,
        sa,
        (n) => count(n, name) === 1 && n.includes(last),
      );
      assert.equal(names[0], 'team', `${ns}/${sa}: the team entry stays first: ${names}`);
      assert.equal(count(names, 'team'), 1, `${ns}/${sa}: ${names}`);
      assert.equal(count(names, name), 1, `${ns}/${sa}: exactly one operator entry: ${names}`);
      assert.equal(count(names, last), 1, `${ns}/${sa}: the last other entry: ${names}`);
      assert.equal(names.length, 3, `${ns}/${sa}: no stale or duplicate entries: ${names}`);
    }
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.equal(cred.status?.syncedNamespaces, namespaces.length);
  });

  // ---- Secrets the operator does not own ----

  it('reports a tenant-owned Secret as a conflict, leaves it untouched, and adopts it only when asked and of the right type', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const nsOpaque = await namespace('conflict', { tenant });
    const nsDocker = await namespace('conflict', { tenant });
    const nsFree = await namespace('conflict', { tenant });
    const secretName = uniqueName('pull');
    const tenantConfig = JSON.stringify({
      auths: { 'tenant.example.com': basicEntry('tenant', 'tenant-own-pass') },
    });
    const opaque = await secret(nsOpaque, {
      metadata: { name: secretName },
      type: 'Opaque',
      data: { '.dockerconfigjson': b64(tenantConfig), note: b64('the tenant wrote this') },
    });
    const docker = await secret(nsDocker, {
      metadata: { name: secretName },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': b64(tenantConfig) },
    });
    const source = await basicSource('robot', 'conflict-pass');
    const name = uniqueName('rc');
    const created = await credential(name, {
      secretName,
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(source)],
    });

    // Both tenant Secrets are conflicts; the third namespace is served anyway.
    let cred = await waitStatus(
      name,
      'Synced=False reason Conflict in both tenant namespaces',
      (c) =>
        condition(c, 'Synced')?.reason === 'Conflict' && c.status?.failedNamespaces?.length === 2,
    );
    assert.equal(condition(cred, 'Synced')?.status, 'False');
    assert.equal(condition(cred, 'Ready')?.status, 'False');
    assert.equal(condition(cred, 'Ready')?.reason, 'Conflict');
    for (const ns of [nsOpaque, nsDocker]) {
      const failed = cred.status?.failedNamespaces?.find((n) => n.name === ns);
      assert.equal(failed?.reason, 'Conflict', `${ns}: ${JSON.stringify(failed)}`);
      assert.match(failed?.message ?? '', new RegExp(`Secret ${ns}/${secretName}\\b`));
    }
    await f.waitDockerConfig(nsFree, secretName, holds('robot', 'conflict-pass'));
    await f.waitPullSecrets(nsFree, 'default', (n) => count(n, secretName) === 1);
    cred = await waitStatus(name, 'one namespace synced', (c) => c.status?.syncedNamespaces === 1);
    assert.equal(cred.status?.targetNamespaces, 3);
    await waitUntil('a Warning Event about the conflict', async () =>
      (await f.events(name)).some((e) => e.type === 'Warning' && e.reason === 'Conflict'),
    );
    for (const [ns, before] of [
      [nsOpaque, opaque],
      [nsDocker, docker],
    ] as const) {
      const now = await f.secret(ns, secretName);
      assert.equal(now?.metadata?.resourceVersion, before.metadata?.resourceVersion, ns);
      assert.equal(now?.type, before.type);
      assert.deepEqual(now?.data, before.data);
      assert.equal(now?.metadata?.labels, undefined);
    }

    // The tenant hands both over; only the dockerconfigjson one can be taken.
    await f.core.patchNamespacedSecret(
      {
        namespace: nsOpaque,
        name: secretName,
        body: { metadata: { annotations: { [ADOPT_ANNOTATION]: name } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const opaqueAnnotated = await f.secret(nsOpaque, secretName);
    await f.core.patchNamespacedSecret(
      {
        namespace: nsDocker,
        name: secretName,
        body: { metadata: { annotations: { [ADOPT_ANNOTATION]: name } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // The operator cannot watch unlabelled Secrets: it retries conflicts periodically, and
    // any change to the credential makes it look again now.
    await f.patchCredential(name, {
      metadata: { annotations: { 'test.regcred.dev/touch': 'adopt' } },
    });
    const adopted = await waitFor(
      `Secret ${nsDocker}/${secretName} adopted`,
      () => f.secret(nsDocker, secretName),
      (s) => s?.metadata?.labels?.[CREDENTIAL_LABEL] === name,
    );
    assert.equal(adopted?.metadata?.labels?.[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
    assert.equal(adopted?.metadata?.annotations?.[ADOPT_ANNOTATION], undefined);
    assert.equal(adopted?.type, 'kubernetes.io/dockerconfigjson');
    assert.deepEqual(
      adopted?.metadata?.ownerReferences?.map((r) => [r.apiVersion, r.kind, r.name, r.uid]),
      [[API_VERSION, KIND, name, created.metadata.uid]],
    );
    await assertHolds(nsDocker, secretName, 'robot', 'conflict-pass');
    await f.waitPullSecrets(nsDocker, 'default', (n) => count(n, secretName) === 1);
    cred = await waitStatus(
      name,
      `only ${nsOpaque} left in conflict`,
      (c) => c.status?.syncedNamespaces === 2 && c.status?.failedNamespaces?.length === 1,
    );
    assert.equal(cred.status?.failedNamespaces?.[0]?.name, nsOpaque);
    assert.equal(condition(cred, 'Synced')?.reason, 'Conflict');

    // A new target makes the operator look at everything again, the annotated Opaque Secret
    // included: it is still refused, never converted.
    await namespace('conflict', { tenant });
    cred = await waitStatus(
      name,
      'the fourth namespace synced, the Opaque Secret still in conflict',
      (c) => c.status?.targetNamespaces === 4 && c.status?.syncedNamespaces === 3,
    );
    assert.deepEqual(
      cred.status?.failedNamespaces?.map((n) => [n.name, n.reason]),
      [[nsOpaque, 'Conflict']],
    );
    assert.equal(condition(cred, 'Ready')?.status, 'False');
    const stillOpaque = await f.secret(nsOpaque, secretName);
    assert.equal(
      stillOpaque?.metadata?.resourceVersion,
      opaqueAnnotated?.metadata?.resourceVersion,
    );
    assert.equal(stillOpaque?.type, 'Opaque');
    assert.deepEqual(stillOpaque?.data, opaque.data);
    assert.equal(stillOpaque?.metadata?.labels, undefined);
    assert.equal(
      (await f.pullSecretNames(nsOpaque)).includes(secretName),
      false,
      'no ServiceAccount entry points at a Secret the operator does not manage',
    );
  });

  it('lets the older of two RegistryCredentials with one secretName keep it, and hands it to the newer when the older goes', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const ns = await namespace('shared', { tenant });
    const secretName = uniqueName('shared-pull');
    const base = uniqueName('rc');
    // The newer one has the smaller name: only its age can make it lose.
    const olderName = `${base}-old`;
    const newerName = `${base}-new`;
    const olderSource = await basicSource('older', 'older-pass');
    const newerSource = await basicSource('newer', 'newer-pass');

    const older = await credential(olderName, {
      secretName,
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(olderSource)],
    });
    await f.waitCondition(olderName, 'Ready', 'True');
    await f.waitDockerConfig(ns, secretName, holds('older', 'older-pass'));
    // creationTimestamp has one-second resolution.
    const olderCreated = Date.parse(String(older.metadata.creationTimestamp));
    await waitUntil(
      'a second after the older credential',
      () => Date.now() >= olderCreated + 1_100,
    );
    await credential(newerName, {
      secretName,
      namespaces: [ns],
      registries: [basicRegistry(newerSource)],
    });

    const newer = await f.waitCondition(newerName, 'Synced', 'False', 'Conflict');
    assert.equal(condition(newer, 'Ready')?.status, 'False');
    assert.equal(condition(newer, 'Ready')?.reason, 'Conflict');
    assert.equal(newer.status?.failedNamespaces?.length, 1);
    const failed = newer.status?.failedNamespaces?.[0];
    assert.equal(failed?.name, ns);
    assert.equal(failed?.reason, 'Conflict');
    assert.match(failed?.message ?? '', new RegExp(`\\b${olderName}\\b`));
    const olderNow = await f.waitCondition(olderName, 'Ready', 'True');
    assert.equal(olderNow.status?.syncedNamespaces, 1);
    await assertHolds(ns, secretName, 'older', 'older-pass');
    assert.equal((await f.secret(ns, secretName))?.metadata?.labels?.[CREDENTIAL_LABEL], olderName);
    assert.equal(count(await f.pullSecretNames(ns), secretName), 1);

    await f.deleteCredential(olderName);
    await f.waitCredentialGone(olderName);
    // The newer one learns of it on its conflict retry at the latest (60 s).
    await f.waitDockerConfig(ns, secretName, holds('newer', 'newer-pass'), { timeoutMs: 90_000 });
    const taken = await f.secret(ns, secretName);
    assert.equal(taken?.metadata?.labels?.[CREDENTIAL_LABEL], newerName);
    assert.deepEqual(
      taken?.metadata?.ownerReferences?.map((r) => r.name),
      [newerName],
    );
    const after = await f.waitCondition(newerName, 'Ready', 'True');
    assert.equal(after.status?.failedNamespaces, undefined);
    assert.deepEqual(await f.waitPullSecrets(ns, 'default', (n) => count(n, secretName) === 1), [
      secretName,
    ]);
  });

  // ---- source changes ----

  it('rotates a changed source password into every target namespace and stays Ready', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const namespaces: string[] = [];
    for (let i = 0; i < 4; i++) namespaces.push(await namespace('rotate', { tenant }));
    const source = await basicSource('robot', 'rotate-old');
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(source)],
    });
    const ready = await f.waitCondition(name, 'Ready', 'True');
    for (const ns of namespaces) await f.waitDockerConfig(ns, name, holds('robot', 'rotate-old'));
    const warnings = async () => (await f.events(name)).filter((e) => e.type === 'Warning');
    const warningsBefore = await warnings();

    await f.setSecretData(OPERATOR_NAMESPACE, source, { password: 'rotate-new' });
    for (const ns of namespaces) await f.waitDockerConfig(ns, name, holds('robot', 'rotate-new'));

    const after = await f.waitCondition(name, 'Ready', 'True');
    assert.equal(after.status?.syncedNamespaces, 4);
    assert.equal(after.status?.targetNamespaces, 4);
    // Ready never left True: no transition, and no new Warning on the way.
    assert.equal(
      condition(after, 'Ready')?.lastTransitionTime,
      condition(ready, 'Ready')?.lastTransitionTime,
    );
    assert.deepEqual(await warnings(), warningsBefore);
  });

  it('reports SourceNotFound when the source Secret is deleted, keeps the written Secrets, and recovers when it returns', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const namespaces = [await namespace('gone', { tenant }), await namespace('gone', { tenant })];
    const source = await basicSource('robot', 'gone-pass');
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(source)],
    });
    await f.waitCondition(name, 'Ready', 'True');
    for (const ns of namespaces) {
      await f.waitDockerConfig(ns, name, holds('robot', 'gone-pass'));
      await f.waitPullSecrets(ns, 'default', (n) => count(n, name) === 1);
    }

    await f.core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: source });
    const missing = await f.waitCondition(name, 'CredentialsReady', 'False', 'SourceNotFound');
    assert.equal(condition(missing, 'Ready')?.status, 'False');
    assert.equal(condition(missing, 'Ready')?.reason, 'SourceNotFound');
    assert.match(condition(missing, 'Ready')?.message ?? '', new RegExp(source));
    for (const ns of namespaces) {
      await assertHolds(ns, name, 'robot', 'gone-pass');
      assert.deepEqual(await f.pullSecretNames(ns), [name]);
    }

    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 'back-pass');
    await f.waitCondition(name, 'Ready', 'True');
    for (const ns of namespaces) await f.waitDockerConfig(ns, name, holds('robot', 'back-pass'));
  });

  it('refuses a source in a namespace it may not read (SourceForbidden) and writes nothing; an allowed extra namespace works', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const target = await namespace('forbid', { tenant });
    const elsewhere = await namespace('not-a-source');
    const forbiddenPassword = leak('forbidden');
    const forbidden = await basicSource('robot', forbiddenPassword, elsewhere);
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(forbidden, elsewhere)],
    });

    const refused = await f.waitCondition(name, 'Ready', 'False', 'SourceForbidden');
    assert.equal(condition(refused, 'CredentialsReady')?.status, 'False');
    assert.equal(condition(refused, 'CredentialsReady')?.reason, 'SourceForbidden');
    assert.match(condition(refused, 'Ready')?.message ?? '', new RegExp(elsewhere));
    assert.equal(JSON.stringify(refused).includes(forbiddenPassword), false);
    assert.equal(await f.secret(target, name), undefined);
    await waitServiceAccount(target);
    assert.equal((await f.pullSecretNames(target)).includes(name), false);

    const allowed = await basicSource('robot', 'allowed-pass', EXTRA_SOURCE_NAMESPACE);
    await f.patchCredential(name, {
      spec: { registries: [basicRegistry(allowed, EXTRA_SOURCE_NAMESPACE)] },
    });
    await f.waitCondition(name, 'Ready', 'True');
    await f.waitDockerConfig(target, name, holds('robot', 'allowed-pass'));
    await f.waitPullSecrets(target, 'default', (n) => count(n, name) === 1);
  });

  describe('malformed sources: SourceInvalid, and no secret value anywhere a user or a log reads', () => {
    interface Case {
      title: string;
      /** The source Secret, named by the test; every value in it must stay out of sight. */
      source: (values: { a: string; b: string; c: string }) => V1Secret;
      registry: (source: string) => RegistryCredentialSpec['registries'][number];
    }
    const dockerConfigRegistry = (source: string) => ({
      dockerConfig: { secretRef: { name: source } },
    });
    const cases: Case[] = [
      {
        title: 'basic source without the password key',
        source: ({ a, b }) => ({
          type: 'Opaque',
          stringData: { username: a, passwd: b },
        }),
        registry: (source) => basicRegistry(source),
      },
      {
        title: 'basic source with a usernameKey the Secret does not have',
        source: ({ a, b }) => ({
          type: 'Opaque',
          stringData: { username: a, password: b },
        }),
        registry: (source) => ({
          server: SERVER,
          basic: { secretRef: { name: source }, usernameKey: 'login' },
        }),
      },
      {
        title: 'dockerConfig source of type Opaque',
        source: ({ a, b, c }) => ({
          type: 'Opaque',
          stringData: {
            '.dockerconfigjson': JSON.stringify({
              auths: { [`${c}.example.com`]: basicEntry(a, b) },
            }),
          },
        }),
        registry: dockerConfigRegistry,
      },
      {
        // Invalid JSON never reaches the operator: the API server refuses a dockerconfigjson
        // (or dockercfg) Secret whose key is not a JSON object. This is the closest a cluster
        // can hold: JSON, but not a docker config.
        title: 'dockerConfig source whose .dockerconfigjson is not a docker config',
        source: ({ a, b, c }) => ({
          type: 'kubernetes.io/dockerconfigjson',
          stringData: { '.dockerconfigjson': JSON.stringify({ auths: `${a} ${b} ${c}` }) },
        }),
        registry: dockerConfigRegistry,
      },
      {
        title: 'dockerConfig source with a non-string field in an auths entry',
        source: ({ a, b, c }) => ({
          type: 'kubernetes.io/dockerconfigjson',
          stringData: {
            '.dockerconfigjson': JSON.stringify({
              auths: { [`${c}.example.com`]: { username: a, password: [b] } },
            }),
          },
        }),
        registry: dockerConfigRegistry,
      },
      {
        title: 'dockerConfig source whose auth is base64 but not user:pass',
        source: ({ a, b, c }) => ({
          type: 'kubernetes.io/dockerconfigjson',
          stringData: {
            '.dockerconfigjson': JSON.stringify({
              auths: { [`${c}.example.com`]: { username: a, password: b, auth: b64(`${a}${b}`) } },
            }),
          },
        }),
        registry: dockerConfigRegistry,
      },
      {
        title: 'dockerConfig source whose auth is not base64 at all',
        source: ({ a, b, c }) => ({
          type: 'kubernetes.io/dockerconfigjson',
          stringData: {
            '.dockerconfigjson': JSON.stringify({
              auths: { [`${c}.example.com`]: { auth: `${a}:${b}!` } },
            }),
          },
        }),
        registry: dockerConfigRegistry,
      },
    ];

    for (const c of cases) {
      it(c.title, async function (this: Mocha.Context) {
        this.timeout(120_000);
        const tenant = uniqueName('tenant');
        const target = await namespace('invalid', { tenant });
        const values = { a: leak('a'), b: leak('b'), c: leak('c') };
        const sourceName = uniqueName('src');
        const stored = await secret(OPERATOR_NAMESPACE, {
          ...c.source(values),
          metadata: { name: sourceName, labels: { ...SOURCE_LABELS } },
        });
        // Every value as written and as stored (base64), in case a whole Secret is dumped.
        const secrets = [
          ...Object.values(values),
          ...Object.values(values).map(b64),
          ...Object.values(stored.data ?? {}),
        ];
        const name = uniqueName('rc');
        await credential(name, {
          namespaceSelector: { matchLabels: { tenant } },
          registries: [c.registry(sourceName)],
        });

        const cred = await f.waitCondition(name, 'CredentialsReady', 'False', 'SourceInvalid');
        assert.equal(condition(cred, 'Ready')?.status, 'False');
        assert.equal(condition(cred, 'Ready')?.reason, 'SourceInvalid');
        const message = condition(cred, 'CredentialsReady')?.message ?? '';
        assert.match(message, new RegExp(sourceName), 'the message names the source Secret');
        const events = await waitFor(
          `a Warning Event SourceInvalid on ${name}`,
          () => f.events(name),
          (list) => list.some((e) => e.type === 'Warning' && e.reason === 'SourceInvalid'),
        );
        assert.equal(await f.secret(target, name), undefined, 'nothing is written');

        const seen = {
          status: JSON.stringify(cred),
          events: JSON.stringify(events),
          'operator logs': allOperatorLogs.join('\n'),
        };
        for (const [where, text] of Object.entries(seen)) {
          for (const value of secrets) {
            assert.equal(text.includes(value), false, `${where} contain a secret value: ${value}`);
          }
        }
      });
    }
  });

  // ---- dockerConfig imports ----

  it('imports a Secret made by `kubectl create secret docker-registry` as it is', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const ns = await namespace('import', { tenant });
    const sourceName = uniqueName('kubectl-made');
    await cluster.kubectlOk([
      'create',
      'secret',
      'docker-registry',
      sourceName,
      '-n',
      OPERATOR_NAMESPACE,
      '--docker-server=ghcr.example.com:5000',
      '--docker-username=ci-bot',
      '--docker-password=import-pass',
      '--docker-email=ci@example.com',
    ]);
    made.secrets.push({ namespace: OPERATOR_NAMESPACE, name: sourceName });
    await f.labelSecret(OPERATOR_NAMESPACE, sourceName, SOURCE_LABELS);
    const source = await f.secret(OPERATOR_NAMESPACE, sourceName);
    assert.equal(source?.type, 'kubernetes.io/dockerconfigjson');
    const sourceConfig = (await f.dockerConfig(OPERATOR_NAMESPACE, sourceName)) as DockerConfig;
    assert.ok(sourceConfig.auths['ghcr.example.com:5000']?.auth, 'kubectl writes an auth field');

    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ dockerConfig: { secretRef: { name: sourceName } } }],
    });
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.deepEqual(cred.status?.registries, [
      { server: 'ghcr.example.com:5000', source: 'dockerConfig' },
    ]);
    const written = await f.waitDockerConfig(ns, name, () => true);
    assert.deepEqual(written?.auths, sourceConfig.auths);
  });

  it('imports a legacy kubernetes.io/dockercfg Secret', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const ns = await namespace('legacy', { tenant });
    const legacy = {
      'legacy.example.com': { ...basicEntry('old-bot', 'legacy-pass'), email: 'old@example.com' },
      'https://index.docker.io/v1/': basicEntry('hub-bot', 'hub-pass'),
    };
    const sourceName = uniqueName('dockercfg');
    await secret(OPERATOR_NAMESPACE, {
      metadata: { name: sourceName, labels: { ...SOURCE_LABELS } },
      type: 'kubernetes.io/dockercfg',
      data: { '.dockercfg': b64(JSON.stringify(legacy)) },
    });
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ dockerConfig: { secretRef: { name: sourceName } } }],
    });
    await f.waitCondition(name, 'Ready', 'True');
    const written = await f.waitDockerConfig(ns, name, () => true);
    assert.deepEqual(written?.auths, legacy);
    assert.equal((await f.secret(ns, name))?.type, 'kubernetes.io/dockerconfigjson');
  });

  // ---- what a user reads ----

  it('records a Normal Event when it becomes Ready, shown by kubectl describe', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    await namespace('events', { tenant });
    const source = await basicSource('robot', 'events-pass');
    const name = uniqueName('rc');
    await credential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [basicRegistry(source)],
    });
    await f.waitCondition(name, 'Ready', 'True');
    const events = await waitFor(
      `a Normal Ready Event on ${name}`,
      () => f.events(name),
      (list) => list.some((e) => e.type === 'Normal' && e.reason === 'Ready'),
    );
    const ready = events.find((e) => e.type === 'Normal' && e.reason === 'Ready');
    const described = await cluster.kubectlOk(['describe', 'regcred', name]);
    assert.match(described, /^Events:/m);
    const eventsSection = described.slice(described.search(/^Events:/m));
    assert.match(eventsSection, /^\s+Normal\s+Ready\s/m);
    assert.ok(eventsSection.includes(ready?.message ?? '<none>'), eventsSection);
  });
});

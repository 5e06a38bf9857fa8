// Which namespaces a RegistryCredential writes into, and what happens to its Secrets and
// imagePullSecrets entries over its life: onboarding, relabelling, ServiceAccount lists, a new
// secretName, suspend, deletion (with the operator running and stopped), drift, and rest.
import assert from 'node:assert/strict';
import {
  PatchStrategy,
  setHeaderOptions,
  type V1LocalObjectReference,
  type V1Secret,
  type V1ServiceAccount,
  Watch,
} from '@kubernetes/client-node';
import {
  CLEANUP_FINALIZER,
  CREDENTIAL_LABEL,
  GROUP,
  IGNORE_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  PLURAL,
  REFRESH_REQUESTED_ANNOTATION,
  type RegistryCredential,
  type RegistryCredentialSpec,
  VERSION,
} from '../../src/api/types.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { type WaitOptions, waitFor, waitUntil } from '../support/wait.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

const SERVER = 'registry.example.com';
const USERNAME = 'robot';
const HOLD_FINALIZER = 'example.com/hold';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function httpCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

/** The operator's regcred_api_writes_total, by label set (absent before its first write). */
async function operatorWrites(): Promise<Map<string, number>> {
  const writes = new Map<string, number>();
  for (const line of (await cluster.operator.metrics()).split('\n')) {
    const match = /^regcred_api_writes_total(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (match) writes.set(match[1] ?? '', Number(match[2]));
  }
  return writes;
}

function sum(writes: ReadonlyMap<string, number>): number {
  return [...writes.values()].reduce((a, b) => a + b, 0);
}

function writesOf(writes: ReadonlyMap<string, number>, resource: string): number {
  let total = 0;
  for (const [labels, value] of writes) {
    if (labels.includes(`resource="${resource}"`)) total += value;
  }
  return total;
}

function describeWrites(writes: ReadonlyMap<string, number>): string {
  return [...writes].map(([labels, value]) => `${labels} ${value}`).join(', ') || 'none';
}

describe('selection and lifecycle of a RegistryCredential', () => {
  let f: Fixtures;
  let credentials: string[] = [];
  let namespaces: string[] = [];
  let sources: string[] = [];

  before(() => {
    f = new Fixtures(cluster.kc);
  });

  // Every test leaves the cluster as it found it, so no leftover makes the operator write
  // during a later test (the at-rest measurement depends on it).
  afterEach(async function () {
    this.timeout(120_000);
    await cluster.startOperator();
    for (const name of credentials) {
      try {
        await f.deleteCredential(name);
      } catch (error) {
        if (httpCode(error) !== 404) throw error;
      }
    }
    for (const name of credentials) await f.waitCredentialGone(name);
    for (const name of namespaces) {
      try {
        await f.core.deleteNamespace({ name });
      } catch (error) {
        // 409: already terminating.
        if (httpCode(error) !== 404 && httpCode(error) !== 409) throw error;
      }
    }
    for (const name of sources) {
      try {
        await f.core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name });
      } catch (error) {
        if (httpCode(error) !== 404) throw error;
      }
    }
    credentials = [];
    namespaces = [];
    sources = [];
  });

  // ---- arrange, in the user's terms ----

  async function namespace(
    prefix: string,
    labels: Record<string, string> = {},
    annotations: Record<string, string> = {},
  ): Promise<string> {
    const name = await f.namespace(prefix, labels, annotations);
    namespaces.push(name);
    return name;
  }

  /** A basic source Secret in the operator's namespace and a RegistryCredential reading it. */
  async function credential(
    spec: Omit<RegistryCredentialSpec, 'registries'>,
    password = `pw-${uniqueName('p')}`,
  ): Promise<{ name: string; source: string; password: string }> {
    const source = uniqueName('src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, USERNAME, password);
    sources.push(source);
    const name = uniqueName('rc');
    credentials.push(name);
    await f.createCredential(name, {
      ...spec,
      registries: [{ server: SERVER, basic: { secretRef: { name: source } } }],
    });
    return { name, source, password };
  }

  function waitStatus(
    name: string,
    what: string,
    accept: (cred: RegistryCredential) => boolean,
    options?: WaitOptions,
  ): Promise<RegistryCredential> {
    return waitFor(
      `RegistryCredential ${name} ${what}`,
      () => f.getCredential(name),
      accept,
      options,
    );
  }

  /** Ready=True on the current generation with exactly `targets` target namespaces, all synced. */
  function waitReadyOver(name: string, targets: number): Promise<RegistryCredential> {
    return waitStatus(name, `Ready over ${targets} synced namespaces`, (cred) => {
      const ready = cred.status?.conditions?.find((c) => c.type === 'Ready');
      return (
        ready?.status === 'True' &&
        ready.observedGeneration === cred.metadata.generation &&
        cred.status?.targetNamespaces === targets &&
        cred.status?.syncedNamespaces === targets
      );
    });
  }

  function waitServiceAccount(ns: string, name = 'default'): Promise<V1ServiceAccount | undefined> {
    return waitFor(
      `ServiceAccount ${ns}/${name} to exist`,
      () => f.serviceAccount(ns, name),
      (sa) => sa !== undefined,
    );
  }

  async function serviceAccount(
    ns: string,
    name: string,
    fields: Omit<V1ServiceAccount, 'metadata'> = {},
  ): Promise<void> {
    await f.core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name }, ...fields },
    });
  }

  /** A user's read-modify-write of imagePullSecrets, as `kubectl edit` does it. */
  async function editPullSecrets(
    ns: string,
    sa: string,
    edit: (names: string[]) => string[],
  ): Promise<void> {
    await waitServiceAccount(ns, sa);
    for (let attempt = 0; ; attempt++) {
      const current = await f.core.readNamespacedServiceAccount({ namespace: ns, name: sa });
      const names = (current.imagePullSecrets ?? []).map((e) => e.name ?? '');
      const imagePullSecrets: V1LocalObjectReference[] = edit(names).map((name) => ({ name }));
      try {
        await f.core.replaceNamespacedServiceAccount({
          namespace: ns,
          name: sa,
          body: { ...current, imagePullSecrets },
        });
        return;
      } catch (error) {
        if (httpCode(error) !== 409 || attempt >= 10) throw error;
      }
    }
  }

  function waitEntries(ns: string, sa: string, expected: string[]): Promise<string[]> {
    return f.waitPullSecrets(ns, sa, (names) => names.join(',') === expected.join(','));
  }

  /**
   * Watches one ServiceAccount and the Secrets of its namespace from their current state: a
   * timeline of each ServiceAccount version's imagePullSecrets names and each Secret event, in
   * the order the API server committed them (one etcd: resourceVersions are its revisions).
   */
  async function recordHistory(ns: string, sa: string) {
    type Step =
      | { rv: number; kind: 'serviceAccount'; names: string[] }
      | { rv: number; kind: 'secret'; phase: string; name: string };
    const steps: Step[] = [];
    const errors: string[] = [];
    const aborts: AbortController[] = [];
    let stopped = false;
    const watch = new Watch(cluster.kc);
    const current = await f.core.readNamespacedServiceAccount({ namespace: ns, name: sa });
    const secrets = await f.core.listNamespacedSecret({ namespace: ns });
    const onError = (err: unknown) => {
      if (err && !stopped) errors.push(String(err));
    };
    const rvOf = (obj: { metadata?: { resourceVersion?: string } }) =>
      Number(obj.metadata?.resourceVersion);
    aborts.push(
      await watch.watch(
        `/api/v1/namespaces/${ns}/serviceaccounts`,
        {
          fieldSelector: `metadata.name=${sa}`,
          resourceVersion: current.metadata?.resourceVersion ?? '',
        },
        (phase: string, obj: V1ServiceAccount) => {
          if (phase !== 'ADDED' && phase !== 'MODIFIED') {
            errors.push(`${phase} ${JSON.stringify(obj)}`);
            return;
          }
          const names = (obj.imagePullSecrets ?? []).map((e) => e.name ?? '');
          steps.push({ rv: rvOf(obj), kind: 'serviceAccount', names });
        },
        onError,
      ),
      await watch.watch(
        `/api/v1/namespaces/${ns}/secrets`,
        { resourceVersion: secrets.metadata?.resourceVersion ?? '' },
        (phase: string, obj: V1Secret) => {
          steps.push({ rv: rvOf(obj), kind: 'secret', phase, name: obj.metadata?.name ?? '' });
        },
        onError,
      ),
    );
    return {
      errors,
      /** Every Secret event, and the imagePullSecrets of the latest version, as of now. */
      seen(): { secretEvents: string[]; entries: string[] | undefined } {
        const secretEvents: string[] = [];
        let entries: string[] | undefined;
        for (const step of steps) {
          if (step.kind === 'secret') secretEvents.push(`${step.phase} ${step.name}`);
          else entries = step.names;
        }
        return { secretEvents, entries };
      },
      /**
       * Replays the timeline; at each step, the ServiceAccount's entries that name an existing
       * Secret. A line per step, for the failure message.
       */
      replay(): Array<{ step: string; pulling: string[] }> {
        const exist = new Set(secrets.items.map((s) => s.metadata?.name ?? ''));
        let names = (current.imagePullSecrets ?? []).map((e) => e.name ?? '');
        const out: Array<{ step: string; pulling: string[] }> = [];
        for (const step of [...steps].sort((x, y) => x.rv - y.rv)) {
          if (step.kind === 'secret') {
            if (step.phase === 'DELETED') exist.delete(step.name);
            else exist.add(step.name);
          } else {
            names = step.names;
          }
          const label =
            step.kind === 'secret'
              ? `${step.phase} Secret ${step.name}`
              : `ServiceAccount [${step.names.join(',')}]`;
          out.push({ step: `${step.rv} ${label}`, pulling: names.filter((n) => exist.has(n)) });
        }
        return out;
      },
      stop(): void {
        stopped = true;
        for (const abort of aborts) abort.abort();
      },
    };
  }

  /** The password in a managed Secret, or undefined when the Secret does not exist. */
  async function writtenPassword(ns: string, secretName: string): Promise<string | undefined> {
    return (await f.dockerConfig(ns, secretName))?.auths[SERVER]?.password;
  }

  /**
   * Proves a negative: a fresh RegistryCredential turning Ready means the operator has worked
   * through the events that came before it. It targets nothing, so it writes nowhere.
   */
  async function operatorCaughtUp(): Promise<void> {
    const { name } = await credential({ namespaces: [uniqueName('nowhere')] });
    await f.waitCondition(name, 'Ready', 'True', 'NoTargets');
  }

  // ---- 1. selection ----

  describe('selection', () => {
    it('selects namespaces by matchLabels', async () => {
      const tenant = uniqueName('tenant');
      const a = await namespace('ml', { tenant });
      const b = await namespace('ml', { tenant });
      const other = await namespace('ml', { tenant: `${tenant}-other` });
      const { name, password } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
      });
      await waitReadyOver(name, 2);
      assert.equal(await writtenPassword(a, name), password);
      assert.equal(await writtenPassword(b, name), password);
      assert.equal(await f.secret(other, name), undefined);
    });

    it('selects namespaces by matchExpressions (In, NotIn, Exists, DoesNotExist)', async () => {
      const tenant = uniqueName('tenant');
      const gold = await namespace('mx', { tenant, tier: 'gold', team: 'a' });
      const silver = await namespace('mx', { tenant, tier: 'silver', team: 'b' });
      const bronze = await namespace('mx', { tenant, tier: 'bronze', team: 'c' });
      const noTeam = await namespace('mx', { tenant, tier: 'gold' });
      const frozen = await namespace('mx', { tenant, tier: 'gold', team: 'd', frozen: 'yes' });
      const { name } = await credential({
        namespaceSelector: {
          matchLabels: { tenant },
          matchExpressions: [
            { key: 'tier', operator: 'In', values: ['gold', 'silver'] },
            { key: 'team', operator: 'Exists' },
            { key: 'team', operator: 'NotIn', values: ['z'] },
            { key: 'frozen', operator: 'DoesNotExist' },
          ],
        },
      });
      await waitReadyOver(name, 2);
      assert.ok(await f.secret(gold, name), 'tier=gold with a team is selected');
      assert.ok(await f.secret(silver, name), 'tier=silver with a team is selected');
      for (const ns of [bronze, noTeam, frozen]) {
        assert.equal(await f.secret(ns, name), undefined, `${ns} is not selected`);
      }
    });

    it('selects namespaces named in spec.namespaces, labels or not', async () => {
      const named = await namespace('named');
      const alsoNamed = await namespace('named', { unrelated: 'label' });
      const unnamed = await namespace('named');
      const { name } = await credential({ namespaces: [named, alsoNamed, uniqueName('absent')] });
      const cred = await waitReadyOver(name, 2);
      assert.equal(cred.status?.failedNamespaces, undefined);
      assert.ok(await f.secret(named, name));
      assert.ok(await f.secret(alsoNamed, name));
      assert.equal(await f.secret(unnamed, name), undefined);
    });

    it('targets the union of the selector matches and the named namespaces, each once', async () => {
      const tenant = uniqueName('tenant');
      const labelled = await namespace('union', { tenant });
      const both = await namespace('union', { tenant });
      const named = await namespace('union');
      const neither = await namespace('union');
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        namespaces: [both, named],
      });
      await waitReadyOver(name, 3);
      for (const ns of [labelled, both, named]) {
        assert.ok(await f.secret(ns, name), `${ns} holds the Secret`);
        assert.deepEqual(await f.waitPullSecrets(ns, 'default', (n) => n.includes(name)), [name]);
      }
      assert.equal(await f.secret(neither, name), undefined);
    });

    it('skips a namespace annotated regcred.dev/ignore, and removes its Secret when the annotation comes later', async () => {
      const tenant = uniqueName('tenant');
      const ignoredFromStart = await namespace('ign', { tenant }, { [IGNORE_ANNOTATION]: 'true' });
      // The annotation is the namespace owner's opt-out: it wins over being named, too.
      const ignoredNamed = await namespace('ign', {}, { [IGNORE_ANNOTATION]: 'true' });
      const later = await namespace('ign', { tenant });
      await editPullSecrets(later, 'default', () => ['user-pull']);
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        namespaces: [ignoredNamed],
      });
      await waitReadyOver(name, 1);
      assert.equal(await f.secret(ignoredFromStart, name), undefined);
      assert.equal(await f.secret(ignoredNamed, name), undefined);
      await waitEntries(later, 'default', ['user-pull', name]);

      await f.annotateNamespace(later, { [IGNORE_ANNOTATION]: 'true' });
      await f.waitSecretGone(later, name);
      await waitEntries(later, 'default', ['user-pull']);
      const cred = await f.waitCondition(name, 'Ready', 'True', 'NoTargets');
      assert.equal(cred.status?.targetNamespaces, 0);
    });

    it('skips kube-public when only a selector matches it, and writes there once it is named', async () => {
      const label = uniqueName('sys');
      const tenant = await namespace('sys', { 'regcred-test-sys': label });
      await f.labelNamespace('kube-public', { 'regcred-test-sys': label });
      try {
        const { name } = await credential({
          namespaceSelector: { matchLabels: { 'regcred-test-sys': label } },
        });
        await waitReadyOver(name, 1);
        assert.ok(await f.secret(tenant, name));
        assert.equal(await f.secret('kube-public', name), undefined);

        await f.patchCredential(name, { spec: { namespaces: ['kube-public'] } });
        await waitReadyOver(name, 2);
        assert.ok(await f.secret('kube-public', name));
        await f.waitPullSecrets('kube-public', 'default', (n) => n.includes(name));

        // Leave kube-public as we found it.
        await f.deleteCredential(name);
        await f.waitCredentialGone(name);
        assert.equal(await f.secret('kube-public', name), undefined);
        assert.ok(!(await f.pullSecretNames('kube-public')).includes(name));
      } finally {
        await f.labelNamespace('kube-public', { 'regcred-test-sys': null });
      }
    });

    it('stops counting a terminating namespace and reports no failure for it', async function () {
      this.timeout(120_000);
      const tenant = uniqueName('tenant');
      const live = await namespace('term', { tenant });
      // A finalizer of our own holds the namespace in Terminating for as long as we need.
      const held = uniqueName('term-held');
      await f.core.createNamespace({
        body: { metadata: { name: held, labels: { tenant }, finalizers: [HOLD_FINALIZER] } },
      });
      namespaces.push(held);
      try {
        const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
        await waitReadyOver(name, 2);

        await f.core.deleteNamespace({ name: held });
        const cred = await waitReadyOver(name, 1);
        assert.equal(cred.status?.failedNamespaces, undefined);
        assert.equal(
          cred.status?.conditions?.find((c) => c.type === 'Ready')?.reason,
          'Ready',
          'a terminating namespace is not a failure',
        );
        assert.ok((await f.core.readNamespace({ name: held })).metadata?.deletionTimestamp);
        assert.ok(await f.secret(live, name));
      } finally {
        await f.core.patchNamespace(
          { name: held, body: { metadata: { finalizers: null } } },
          mergePatch,
        );
      }
      // The namespace controller finishes the deletion; the at-rest test waits for it.
    });

    it('reports Ready=True with reason NoTargets when the selector matches nothing', async () => {
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant: uniqueName('typo') } },
      });
      const cred = await f.waitCondition(name, 'Ready', 'True', 'NoTargets');
      assert.equal(cred.status?.targetNamespaces, 0);
      assert.equal(cred.status?.syncedNamespaces, 0);
      const ready = cred.status?.conditions?.find((c) => c.type === 'Ready');
      assert.match(ready?.message ?? '', /(no namespace|nothing) matched/i);
    });
  });

  // ---- 2. onboarding ----

  describe('onboarding', () => {
    it('onboards a namespace created after the RegistryCredential: Secret and default ServiceAccount entry', async function () {
      this.timeout(180_000);
      const tenant = uniqueName('tenant');
      const { name, password } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
      });
      await f.waitCondition(name, 'Ready', 'True', 'NoTargets');

      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const ns = await namespace('onboard', { tenant });
        let secretAfter: number | undefined;
        let entryAfter: number | undefined;
        await waitUntil(
          `namespace ${ns} to hold Secret ${name} and the default ServiceAccount entry`,
          async () => {
            const [secret, entries] = await Promise.all([
              f.secret(ns, name),
              f.pullSecretNames(ns, 'default'),
            ]);
            const now = performance.now() - started;
            if (secret && secretAfter === undefined) secretAfter = now;
            if (entries.includes(name) && entryAfter === undefined) entryAfter = now;
            return secretAfter !== undefined && entryAfter !== undefined;
          },
          { timeoutMs: 60_000, intervalMs: 10 },
        );
        const latency = Math.round(Math.max(secretAfter ?? 0, entryAfter ?? 0));
        latencies.push(latency);
        console.log(
          `      onboarding latency: ${latency} ms (${ns}: Secret after ${Math.round(secretAfter ?? 0)} ms, default ServiceAccount entry after ${Math.round(entryAfter ?? 0)} ms)`,
        );
        assert.equal(await writtenPassword(ns, name), password);
        assert.deepEqual(await f.pullSecretNames(ns, 'default'), [name]);
      }
      const sorted = [...latencies].sort((a, b) => a - b);
      console.log(
        `      onboarding latency over ${sorted.length} namespaces: median ${sorted[2]} ms, worst ${sorted[sorted.length - 1]} ms`,
      );
      await waitReadyOver(name, 5);
    });
  });

  // ---- 3. relabel out ----

  describe('relabelling a namespace out', () => {
    it('removes the Secret and only its own entry when a namespace is relabelled out', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('relabel', { tenant });
      const stays = await namespace('relabel', { tenant });
      await editPullSecrets(ns, 'default', () => ['user-pull']);
      const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
      await waitReadyOver(name, 2);
      await waitEntries(ns, 'default', ['user-pull', name]);
      await editPullSecrets(ns, 'default', (names) => [...names, 'user-late']);

      await f.labelNamespace(ns, { tenant: null });
      await f.waitSecretGone(ns, name);
      await waitEntries(ns, 'default', ['user-pull', 'user-late']);
      await waitReadyOver(name, 1);
      assert.ok(await f.secret(stays, name), 'the namespace still selected keeps its Secret');
      assert.deepEqual(await f.pullSecretNames(stays), [name]);
    });
  });

  // ---- 4. serviceAccounts ----

  describe('spec.serviceAccounts', () => {
    it('patches only the default ServiceAccount when the list is absent', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('sa-absent', { tenant });
      await serviceAccount(ns, 'builder');
      await waitServiceAccount(ns);
      const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
      await waitReadyOver(name, 1);
      await waitEntries(ns, 'default', [name]);
      await operatorCaughtUp();
      assert.deepEqual(await f.pullSecretNames(ns, 'builder'), []);
    });

    it('patches every listed ServiceAccount, including one created after the RegistryCredential', async () => {
      const tenant = uniqueName('tenant');
      const early = await namespace('sa-list', { tenant });
      await serviceAccount(early, 'builder');
      await serviceAccount(early, 'deployer');
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: ['builder', 'default'],
      });
      await waitReadyOver(name, 1);
      await waitEntries(early, 'builder', [name]);
      await waitEntries(early, 'default', [name]);

      const late = await namespace('sa-list', { tenant });
      await waitEntries(late, 'default', [name]);
      await serviceAccount(late, 'builder', { imagePullSecrets: [{ name: 'user-pull' }] });
      await waitEntries(late, 'builder', ['user-pull', name]);
      await waitReadyOver(name, 2);
      await operatorCaughtUp();
      assert.deepEqual(await f.pullSecretNames(early, 'deployer'), []);
    });

    it('patches every ServiceAccount with ["*"], including one created later', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('sa-all', { tenant });
      await serviceAccount(ns, 'builder');
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: ['*'],
      });
      await waitReadyOver(name, 1);
      await waitEntries(ns, 'default', [name]);
      await waitEntries(ns, 'builder', [name]);
      await serviceAccount(ns, 'created-later');
      await waitEntries(ns, 'created-later', [name]);
    });

    it('writes the Secret but patches no ServiceAccount with [], and removes entries when the list shrinks to []', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('sa-none', { tenant });
      await waitServiceAccount(ns);
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: [],
      });
      await waitReadyOver(name, 1);
      assert.ok(await f.secret(ns, name));
      await operatorCaughtUp();
      assert.deepEqual(await f.pullSecretNames(ns, 'default'), []);

      await f.patchCredential(name, { spec: { serviceAccounts: ['default'] } });
      await waitEntries(ns, 'default', [name]);
      await f.patchCredential(name, { spec: { serviceAccounts: [] } });
      await waitEntries(ns, 'default', []);
      await waitReadyOver(name, 1);
      assert.ok(await f.secret(ns, name), 'the Secret stays');
    });

    it('removes the entry from a ServiceAccount dropped from the list, and only there', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('sa-shrink', { tenant });
      await serviceAccount(ns, 'builder', { imagePullSecrets: [{ name: 'user-pull' }] });
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: ['builder', 'default'],
      });
      await waitReadyOver(name, 1);
      await waitEntries(ns, 'builder', ['user-pull', name]);
      await waitEntries(ns, 'default', [name]);

      await f.patchCredential(name, { spec: { serviceAccounts: ['default'] } });
      await waitEntries(ns, 'builder', ['user-pull']);
      await waitReadyOver(name, 1);
      assert.deepEqual(await f.pullSecretNames(ns, 'default'), [name]);
      assert.ok(await f.secret(ns, name));
    });

    it('changes nothing else on a ServiceAccount it patches (automountServiceAccountToken, secrets, labels)', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('sa-keep', { tenant });
      await f.core.createNamespacedServiceAccount({
        namespace: ns,
        body: {
          metadata: { name: 'locked', labels: { team: 'a' }, annotations: { owner: 'team-a' } },
          automountServiceAccountToken: false,
          secrets: [{ name: 'locked-token' }],
          imagePullSecrets: [{ name: 'user-pull' }],
        },
      });
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: ['locked'],
      });
      // Everything but imagePullSecrets, as the user set it.
      const rest = (sa: V1ServiceAccount | undefined) => ({
        automountServiceAccountToken: sa?.automountServiceAccountToken,
        secrets: sa?.secrets?.map((s) => s.name),
        team: sa?.metadata?.labels?.team,
        owner: sa?.metadata?.annotations?.owner,
      });
      const expected = {
        automountServiceAccountToken: false,
        secrets: ['locked-token'],
        team: 'a',
        owner: 'team-a',
      };
      await waitEntries(ns, 'locked', ['user-pull', name]);
      const afterAdding = rest(await f.serviceAccount(ns, 'locked'));

      await f.labelNamespace(ns, { tenant: null });
      await waitEntries(ns, 'locked', ['user-pull']);
      const afterRemoving = rest(await f.serviceAccount(ns, 'locked'));
      assert.deepEqual(
        { afterAdding, afterRemoving },
        { afterAdding: expected, afterRemoving: expected },
      );
    });
  });

  // ---- 5. secretName ----

  describe('spec.secretName', () => {
    it('moves to a new secretName: old Secret and entries removed, new ones written, user entries untouched', async () => {
      const tenant = uniqueName('tenant');
      const a = await namespace('rename', { tenant });
      const b = await namespace('rename', { tenant });
      await editPullSecrets(a, 'default', () => ['user-pull']);
      const oldName = uniqueName('pull-old');
      const newName = uniqueName('pull-new');
      const { name, password } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        secretName: oldName,
      });
      await waitReadyOver(name, 2);
      await waitEntries(a, 'default', ['user-pull', oldName]);
      await waitEntries(b, 'default', [oldName]);
      await editPullSecrets(a, 'default', (names) => [...names, 'user-late']);

      // Every version of a's default ServiceAccount and every Secret event in a, from here on.
      const history = await recordHistory(a, 'default');
      try {
        await f.patchCredential(name, { spec: { secretName: newName } });
        for (const ns of [a, b]) {
          await f.waitSecretGone(ns, oldName);
          assert.equal(await writtenPassword(ns, newName), password);
        }
        await waitEntries(a, 'default', ['user-pull', 'user-late', newName]);
        await waitEntries(b, 'default', [newName]);
        await waitReadyOver(name, 2);
        // The watches may trail the reads above.
        await waitUntil(`the watches of ${a} to see the move`, () => {
          const { secretEvents, entries } = history.seen();
          return (
            secretEvents.includes(`DELETED ${oldName}`) &&
            entries?.join(',') === ['user-pull', 'user-late', newName].join(',')
          );
        });
      } finally {
        history.stop();
      }
      // Make before break: a Pod created at any moment of the move could pull. At every step
      // the ServiceAccount lists one of our Secrets that exists.
      assert.deepEqual(history.errors, []);
      const timeline = history.replay();
      const ours = (names: string[]) => names.includes(oldName) || names.includes(newName);
      assert.ok(
        timeline.every((t) => ours(t.pulling)),
        `${a}/default during the move (step: the entries that name an existing Secret):\n${timeline
          .map((t) => `  ${t.step}: ${t.pulling.join(',')}`)
          .join('\n')}`,
      );
    });
  });

  describe('spec.secretName into a conflict', () => {
    it('keeps the old Secret and entry where the new name belongs to someone else, and moves once it is free', async () => {
      const tenant = uniqueName('tenant');
      const free = await namespace('rename', { tenant });
      const taken = await namespace('rename', { tenant });
      const oldName = uniqueName('pull-old');
      const newName = uniqueName('pull-new');
      await f.core.createNamespacedSecret({
        namespace: taken,
        body: { metadata: { name: newName }, type: 'Opaque', data: { note: 'dGVhbQ==' } },
      });
      const { name, password } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        secretName: oldName,
      });
      await waitReadyOver(name, 2);
      await waitEntries(taken, 'default', [oldName]);

      await f.patchCredential(name, { spec: { secretName: newName } });
      const cred = await waitStatus(
        name,
        `a Conflict in ${taken} only`,
        (c) =>
          c.status?.observedGeneration === c.metadata.generation &&
          c.status?.syncedNamespaces === 1 &&
          c.status?.failedNamespaces?.map((n) => `${n.name}:${n.reason}`).join() ===
            `${taken}:Conflict`,
      );
      assert.equal(cred.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
      await f.waitSecretGone(free, oldName);
      await waitEntries(free, 'default', [newName]);
      // Pods in the namespace the operator could not move still pull with the old Secret.
      assert.equal(await writtenPassword(taken, oldName), password);
      assert.deepEqual(await f.pullSecretNames(taken, 'default'), [oldName]);
      assert.equal((await f.secret(taken, newName))?.type, 'Opaque');

      // The owner frees the name and asks for a retry now (else the conflict is retried within
      // a minute): the move completes there too.
      await f.core.deleteNamespacedSecret({ namespace: taken, name: newName });
      await f.patchCredential(name, {
        metadata: { annotations: { [REFRESH_REQUESTED_ANNOTATION]: 'name-freed' } },
      });
      await f.waitSecretGone(taken, oldName);
      assert.equal(await writtenPassword(taken, newName), password);
      await waitEntries(taken, 'default', [newName]);
      await waitReadyOver(name, 2);
    });
  });

  // ---- 6. suspend ----

  describe('spec.suspend', () => {
    it('writes and removes nothing while suspended, and converges on resume', async function () {
      this.timeout(120_000);
      const tenant = uniqueName('tenant');
      const stays = await namespace('susp', { tenant });
      const leaves = await namespace('susp', { tenant });
      const { name, source, password } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
      });
      await waitReadyOver(name, 2);
      await waitEntries(leaves, 'default', [name]);

      await f.patchCredential(name, { spec: { suspend: true } });
      const suspended = await f.waitCondition(name, 'Ready', 'False', 'Suspended');
      // Nothing is synced while suspended: no count left over from when it was (#15).
      assert.equal(suspended.status?.targetNamespaces, undefined);
      assert.equal(suspended.status?.syncedNamespaces, undefined);
      assert.equal(suspended.status?.nextRefreshAt, undefined);
      const before = await operatorWrites();

      await f.labelNamespace(leaves, { tenant: null });
      await f.setSecretData(OPERATOR_NAMESPACE, source, { password: 'rotated-while-suspended' });
      await operatorCaughtUp();

      const after = await operatorWrites();
      assert.equal(
        writesOf(after, 'secrets') + writesOf(after, 'serviceaccounts'),
        writesOf(before, 'secrets') + writesOf(before, 'serviceaccounts'),
        `no Secret or ServiceAccount written while suspended (before: ${describeWrites(before)}; after: ${describeWrites(after)})`,
      );
      assert.equal(await writtenPassword(stays, name), password);
      assert.equal(
        await writtenPassword(leaves, name),
        password,
        'nothing removed while suspended',
      );
      assert.deepEqual(await f.pullSecretNames(leaves), [name]);
      await f.waitCondition(name, 'Ready', 'False', 'Suspended');

      await f.patchCredential(name, { spec: { suspend: false } });
      await f.waitSecretGone(leaves, name);
      await waitEntries(leaves, 'default', []);
      await f.waitDockerConfig(
        stays,
        name,
        (c) => c.auths[SERVER]?.password === 'rotated-while-suspended',
      );
      await waitReadyOver(name, 1);
    });
  });

  // ---- 7. delete ----

  describe('deletion', () => {
    it('cleans up every namespace when the RegistryCredential is deleted, keeping user entries', async () => {
      const tenant = uniqueName('tenant');
      const labelled = await namespace('del', { tenant });
      const named = await namespace('del');
      await editPullSecrets(labelled, 'default', () => ['user-pull']);
      await serviceAccount(named, 'builder', { imagePullSecrets: [{ name: 'user-pull' }] });
      const { name } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        namespaces: [named],
        serviceAccounts: ['builder', 'default'],
      });
      const cred = await waitReadyOver(name, 2);
      assert.ok(cred.metadata.finalizers?.includes(CLEANUP_FINALIZER));
      await waitEntries(labelled, 'default', ['user-pull', name]);
      await waitEntries(named, 'builder', ['user-pull', name]);
      await waitEntries(named, 'default', [name]);

      await f.deleteCredential(name);
      await f.waitCredentialGone(name);
      for (const ns of [labelled, named]) assert.equal(await f.secret(ns, name), undefined);
      assert.deepEqual(await f.pullSecretNames(labelled, 'default'), ['user-pull']);
      assert.deepEqual(await f.pullSecretNames(named, 'builder'), ['user-pull']);
      assert.deepEqual(await f.pullSecretNames(named, 'default'), []);
    });

    it('finishes the cleanup of a RegistryCredential deleted while the operator was stopped', async function () {
      this.timeout(180_000);
      const tenant = uniqueName('tenant');
      const a = await namespace('del-off', { tenant });
      const b = await namespace('del-off', { tenant });
      await editPullSecrets(a, 'default', () => ['user-pull']);
      const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
      await waitReadyOver(name, 2);
      await waitEntries(a, 'default', ['user-pull', name]);
      await waitEntries(b, 'default', [name]);

      try {
        await cluster.stopOperator();
        await f.deleteCredential(name);
        const held = await f.getCredential(name);
        assert.ok(held.metadata.deletionTimestamp, 'deletion has started');
        assert.ok(held.metadata.finalizers?.includes(CLEANUP_FINALIZER), 'the finalizer holds it');
        assert.ok(await f.secret(a, name), 'nothing cleaned up without the operator');
      } finally {
        await cluster.startOperator();
      }
      await f.waitCredentialGone(name);
      for (const ns of [a, b]) assert.equal(await f.secret(ns, name), undefined);
      assert.deepEqual(await f.pullSecretNames(a), ['user-pull']);
      assert.deepEqual(await f.pullSecretNames(b), []);
    });
  });

  // ---- 9. drift ----

  describe('drift', () => {
    it('repairs drift: an edited Secret, a deleted Secret, a removed ServiceAccount entry', async () => {
      const tenant = uniqueName('tenant');
      const ns = await namespace('drift', { tenant });
      const { name, password } = await credential({
        namespaceSelector: { matchLabels: { tenant } },
      });
      await waitReadyOver(name, 1);
      await waitEntries(ns, 'default', [name]);

      const tampered = Buffer.from(
        JSON.stringify({ auths: { 'evil.example.com': { auth: 'eDp5' } } }),
      ).toString('base64');
      await f.core.patchNamespacedSecret(
        { namespace: ns, name, body: { data: { '.dockerconfigjson': tampered } } },
        mergePatch,
      );
      const restored = await f.waitDockerConfig(
        ns,
        name,
        (c) => c.auths[SERVER]?.password === password,
      );
      assert.deepEqual(Object.keys(restored?.auths ?? {}), [SERVER]);

      const uid = (await f.secret(ns, name))?.metadata?.uid;
      await f.core.deleteNamespacedSecret({ namespace: ns, name });
      const recreated = await waitFor(
        `Secret ${ns}/${name} to be recreated`,
        () => f.secret(ns, name),
        (s) => s !== undefined && s.metadata?.uid !== uid,
      );
      assert.equal(recreated?.metadata?.labels?.[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
      assert.equal(recreated?.metadata?.labels?.[CREDENTIAL_LABEL], name);
      assert.equal(await writtenPassword(ns, name), password);

      // One edit that drops our entry and adds the user's own.
      await editPullSecrets(ns, 'default', () => ['user-pull']);
      await waitEntries(ns, 'default', ['user-pull', name]);
      await waitReadyOver(name, 1);
    });
  });

  // ---- 10. kubectl wait ----

  describe('kubectl', () => {
    it('lets `kubectl wait --for=condition=Ready` return', async () => {
      const tenant = uniqueName('tenant');
      await namespace('kwait', { tenant });
      const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
      const result = await cluster.kubectl(
        ['wait', '--for=condition=Ready', '--timeout=30s', `regcred/${name}`],
        { timeoutMs: 45_000 },
      );
      assert.equal(result.code, 0, result.stderr || result.stdout);
      assert.match(result.stdout, /condition met/);
    });
  });

  // ---- 11. at rest ----

  describe('at rest', () => {
    it('makes no write at rest: after convergence, nor after a restart', async function () {
      this.timeout(300_000);
      // Namespaces deleted by earlier tests must be gone first: their teardown is not ours to time.
      await waitUntil(
        'no namespace to be terminating',
        async () =>
          (await f.core.listNamespace()).items.every((ns) => !ns.metadata?.deletionTimestamp),
        { timeoutMs: 150_000, intervalMs: 500 },
      );
      const tenant = uniqueName('tenant');
      const all: string[] = [];
      for (let i = 0; i < 5; i++) all.push(await namespace('rest', { tenant }));
      const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
      await waitReadyOver(name, 5);
      for (const ns of all) await waitEntries(ns, 'default', [name]);
      // The Ready Event is the last write of the converging reconcile.
      await waitUntil(`the Ready Event of ${name}`, async () =>
        (await f.events(name)).some((e) => e.reason === 'Ready'),
      );

      // A barrier instead of a clock: a spec change that selects the same namespaces. The
      // operator has seen it and acted on it once status records its generation; by then it has
      // also seen the echoes of its own writes, and any write they caused is counted. The
      // barrier itself costs exactly one write: the status patch with the new observedGeneration.
      const barrier = async (what: string) => {
        await f.patchCredential(name, {
          spec: {
            namespaceSelector: {
              matchLabels: { tenant },
              matchExpressions: [
                { key: 'tenant', operator: 'In', values: [tenant, uniqueName('barrier')] },
              ],
            },
          },
        });
        await waitStatus(
          name,
          `${what}: the barrier's generation observed`,
          (cred) =>
            cred.status?.observedGeneration === cred.metadata.generation &&
            cred.status?.syncedNamespaces === 5,
        );
      };
      const onlyTheBarrier = (writes: ReadonlyMap<string, number>) =>
        sum(writes) === 1 && writesOf(writes, PLURAL) === 1;

      const converged = await operatorWrites();
      await barrier('at rest');
      const rested = await operatorWrites();
      const atRest = new Map(
        [...rested].map(([labels, n]) => [labels, n - (converged.get(labels) ?? 0)]),
      );
      assert.ok(
        onlyTheBarrier(atRest),
        `writes at rest besides the barrier's status: before ${describeWrites(converged)}; after ${describeWrites(rested)}`,
      );

      // A restart relists everything and reconciles every credential once. It has done so when
      // the queues are empty and every credential in the cluster has been reconciled; then a
      // barrier, as above.
      await cluster.stopOperator();
      const op = await cluster.startOperator();
      const credentials = await f.custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
      });
      const count = (credentials as { items: unknown[] }).items.length;
      await waitUntil(
        `the restarted operator to reconcile all ${count} credentials and empty its queues`,
        async () =>
          ((await op.metric('controller_runtime_reconcile_total')) ?? 0) >= count &&
          (await op.metric('workqueue_depth')) === 0,
      );
      await barrier('after a restart');
      const restarted = await operatorWrites();
      assert.ok(
        onlyTheBarrier(restarted),
        `writes after a restart besides the barrier's status: ${describeWrites(restarted)}`,
      );
      await waitReadyOver(name, 5);
    });
  });
});

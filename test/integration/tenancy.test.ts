// A hostile tenant, as issue #14 found them: someone who can edit only the Secrets and
// ServiceAccounts of their own namespace (`edit` there, through kubectl --as). Whatever they
// do, the operator must not strip entries it never wrote, delete Secrets it cannot prove are
// its own, keep a tenant's edit of its Secret, or leave its entries behind when its
// RegistryCredential is deleted without its finalizer.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1LocalObjectReference,
  type V1Secret,
} from '@kubernetes/client-node';
import {
  CLEANUP_FINALIZER,
  CREDENTIAL_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  PULL_SECRETS_ANNOTATION,
  type RegistryCredentialSpec,
} from '../../src/api/types.ts';
import { deploymentEnv, deploymentNodeFlags } from '../support/deployment.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { startOperator } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

const SERVER = 'registry.example.com';
const USERNAME = 'robot';
const DCJ = 'kubernetes.io/dockerconfigjson';

function httpCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

function b64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

describe('tenancy: what a tenant with edit in its own namespace can and cannot make the operator do', () => {
  let f: Fixtures;
  const credentials: string[] = [];
  const namespaces: string[] = [];
  const sources: string[] = [];
  let barrier = 0;

  before(() => {
    f = new Fixtures(cluster.kc);
  });

  afterEach(async function () {
    this.timeout(120_000);
    await cluster.startOperator();
    for (const name of credentials.splice(0)) {
      try {
        await f.deleteCredential(name);
        await f.waitCredentialGone(name);
      } catch (error) {
        if (httpCode(error) !== 404) throw error;
      }
    }
    for (const name of sources.splice(0)) {
      await f.core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name }).catch(() => {});
    }
    await Promise.all(
      namespaces.splice(0).map((name) => f.core.deleteNamespace({ name }).catch(() => {})),
    );
  });

  async function tenantNamespace(labels: Record<string, string> = {}): Promise<string> {
    const ns = await f.namespace('tenancy', labels);
    namespaces.push(ns);
    await waitFor(
      `ServiceAccount ${ns}/default`,
      () => f.serviceAccount(ns),
      (sa) => sa !== undefined,
    );
    return ns;
  }

  /** kubectl as a tenant holding `edit` in `ns` only; throws with kubectl's error otherwise. */
  async function asTenant(
    ns: string,
  ): Promise<(args: string[], input?: string) => Promise<string>> {
    const user = uniqueName('tenant-user');
    await cluster.kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: uniqueName('tenant-edit') },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
      },
    });
    const run = async (args: string[], input?: string) => {
      const r = await cluster.kubectl(
        [...args, `--as=${user}`],
        input === undefined ? {} : { input },
      );
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} as ${user}: ${r.stderr}`);
      return r.stdout;
    };
    await waitUntil(
      'the tenant to be allowed to edit Secrets',
      async () =>
        (
          await cluster.kubectl(['auth', 'can-i', 'update', 'secrets', '-n', ns, `--as=${user}`])
        ).stdout.trim() === 'yes',
    );
    return run;
  }

  async function credential(
    spec: Partial<RegistryCredentialSpec>,
  ): Promise<{ name: string; password: string }> {
    const name = uniqueName('rc');
    const source = uniqueName('src');
    const password = `pw-${randomBytes(6).toString('hex')}`;
    await f.basicSecret(OPERATOR_NAMESPACE, source, USERNAME, password);
    sources.push(source);
    await f.createCredential(name, {
      registries: [{ server: SERVER, basic: { secretRef: { name: source } } }],
      ...spec,
    } as RegistryCredentialSpec);
    credentials.push(name);
    return { name, password };
  }

  /**
   * Returns once the operator has run a full reconcile of `name` that started after this call:
   * a harmless spec change, and its generation observed in status.
   */
  async function reconciledSinceNow(name: string): Promise<void> {
    barrier += 1;
    const patched = await f.patchCredential(name, {
      spec: { refreshInterval: `${1000 + barrier}h` },
    });
    await waitUntil(`${name} to observe generation ${patched.metadata.generation}`, async () => {
      const cred = await f.getCredential(name);
      return (
        cred.status?.observedGeneration === patched.metadata.generation &&
        (cred.status?.conditions ?? []).every(
          (c) => c.observedGeneration === patched.metadata.generation,
        )
      );
    });
  }

  /** Sets a ServiceAccount's imagePullSecrets as a user would (a merge patch). */
  async function setPullSecrets(
    namespace: string,
    name: string,
    imagePullSecrets: V1LocalObjectReference[],
  ): Promise<void> {
    await f.core.patchNamespacedServiceAccount(
      { namespace, name, body: { imagePullSecrets } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async function entries(ns: string, sa = 'default'): Promise<string[]> {
    return f.pullSecretNames(ns, sa);
  }

  it('never removes an entry it did not write: untargeted and system namespaces, ServiceAccounts outside the list, serviceAccounts: [], finalize', async function () {
    this.timeout(240_000);
    const tenant = uniqueName('tenant');
    const secretName = uniqueName('pull');
    const targeted = await tenantNamespace({ tenant });
    const untargeted = await tenantNamespace({ tenant: 'someone-else' });
    const optedIn = await tenantNamespace({ tenant: `${tenant}-none` });
    // GitOps applied the entry before the Secret exists; a team opted its ci account in by hand.
    await setPullSecrets(untargeted, 'default', [{ name: secretName }]);
    const kubeSystemBefore = (await f.serviceAccount('kube-system'))?.imagePullSecrets ?? [];
    await setPullSecrets('kube-system', 'default', [...kubeSystemBefore, { name: secretName }]);
    try {
      await f.core.createNamespacedServiceAccount({
        namespace: targeted,
        body: { metadata: { name: 'ci' }, imagePullSecrets: [{ name: secretName }] },
      });
      const { name } = await credential({
        secretName,
        namespaceSelector: { matchLabels: { tenant } },
        serviceAccounts: ['default'],
      });
      const none = await credential({
        secretName,
        namespaces: [optedIn],
        serviceAccounts: [],
      });
      const tenantCtl = await asTenant(optedIn);
      await tenantCtl(['create', 'serviceaccount', 'ci', '-n', optedIn]);
      await tenantCtl([
        'patch',
        'serviceaccount',
        'ci',
        '-n',
        optedIn,
        '--type=merge',
        '-p',
        JSON.stringify({ imagePullSecrets: [{ name: secretName }] }),
      ]);
      await f.waitCondition(name, 'Ready', 'True', 'Ready');
      await f.waitCondition(none.name, 'Ready', 'True', 'Ready');
      await waitUntil('the selected default ServiceAccount to get the entry', async () =>
        (await entries(targeted)).includes(secretName),
      );
      await reconciledSinceNow(name);
      await reconciledSinceNow(none.name);

      assert.deepEqual(await entries(untargeted), [secretName], 'untargeted namespace');
      assert.ok(
        ((await f.serviceAccount('kube-system'))?.imagePullSecrets ?? []).some(
          (e) => e.name === secretName,
        ),
        'kube-system',
      );
      assert.deepEqual(
        await entries(targeted, 'ci'),
        [secretName],
        'a ServiceAccount outside the list',
      );
      assert.deepEqual(await entries(optedIn, 'ci'), [secretName], 'opted in by hand under []');
      const recorded = (await f.serviceAccount(targeted))?.metadata?.annotations?.[
        PULL_SECRETS_ANNOTATION
      ];
      assert.equal(recorded, secretName, 'the entry it wrote is recorded in the same object');
      assert.equal(
        (await f.serviceAccount(targeted, 'ci'))?.metadata?.annotations?.[PULL_SECRETS_ANNOTATION],
        undefined,
      );

      // Finalize walks every namespace: still only what it recorded goes.
      for (const cred of [name, none.name]) {
        await f.deleteCredential(cred);
        await f.waitCredentialGone(cred);
      }
      assert.deepEqual(await entries(targeted), [], 'its own entry went');
      assert.deepEqual(await entries(targeted, 'ci'), [secretName]);
      assert.deepEqual(await entries(optedIn, 'ci'), [secretName]);
      assert.deepEqual(await entries(untargeted), [secretName]);
      assert.ok(
        ((await f.serviceAccount('kube-system'))?.imagePullSecrets ?? []).some(
          (e) => e.name === secretName,
        ),
      );
    } finally {
      await setPullSecrets('kube-system', 'default', kubeSystemBefore);
    }
  });

  it('adopts an entry written before it recorded entries only where it selects the ServiceAccount, then removes it like its own', async function () {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const ns = await tenantNamespace({ tenant });
    const secretName = uniqueName('pull');
    await setPullSecrets(ns, 'default', [{ name: 'theirs' }, { name: secretName }]);
    const { name } = await credential({
      secretName,
      namespaceSelector: { matchLabels: { tenant } },
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    await waitUntil(
      'the existing entry to be recorded as ours',
      async () =>
        (await f.serviceAccount(ns))?.metadata?.annotations?.[PULL_SECRETS_ANNOTATION] ===
        secretName,
    );
    assert.deepEqual(await entries(ns), ['theirs', secretName], 'kept in place, not doubled');
    await f.labelNamespace(ns, { tenant: null });
    await waitUntil(
      'its entry to go with the namespace leaving the targets',
      async () => !(await entries(ns)).includes(secretName),
    );
    assert.deepEqual(await entries(ns), ['theirs']);
  });

  it('deletes only Secrets provably its own: not a copy under another name, an Opaque one with its labels, or one labelled for a credential that does not exist', async function () {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const ns = await tenantNamespace({ tenant });
    const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const ours = await f.secret(ns, name);
    assert.ok(ours);
    const tenantCtl = await asTenant(ns);
    const labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CREDENTIAL_LABEL]: name };
    const planted: V1Secret[] = [
      {
        metadata: { name: `${name}-copy`, namespace: ns, labels },
        type: DCJ,
        data: ours.data ?? {},
      },
      {
        metadata: { name: `${name}-opaque`, namespace: ns, labels },
        type: 'Opaque',
        data: { note: b64('mine') },
      },
      {
        metadata: {
          name: 'orphan-labelled',
          namespace: ns,
          labels: { ...labels, [CREDENTIAL_LABEL]: 'no-such-credential' },
        },
        type: DCJ,
        data: ours.data ?? {},
      },
    ];
    for (const secret of planted) {
      await tenantCtl(
        ['create', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'Secret', ...secret }),
      );
    }
    await reconciledSinceNow(name);
    // The namespace leaves the targets: the operator's own Secret goes, the rest must stay.
    await f.labelNamespace(ns, { tenant: null });
    await f.waitSecretGone(ns, name);
    await reconciledSinceNow(name);
    for (const secret of planted) {
      const name_ = secret.metadata?.name ?? '';
      assert.ok(await f.secret(ns, name_), `${ns}/${name_} was deleted`);
    }
  });

  it('keeps a digest, not the bytes, of 100 Secrets of 900 kB a tenant labels as ours: memory stays flat across a restart, and nothing is written', async function () {
    this.timeout(300_000);
    const tenant = uniqueName('tenant');
    const ns = await tenantNamespace({ tenant });
    const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    // Measured as it runs in production: the Deployment's heap settings and node flags, plus
    // an inspector on loopback to collect garbage before each reading (collectGarbage).
    await cluster.stopOperator();
    const op = await startOperator({
      kubeconfigPath: cluster.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
      env: deploymentEnv(),
      nodeFlags: [...deploymentNodeFlags(), '--inspect=127.0.0.1:0'],
    });
    try {
      const memory = () => {
        const status = readFileSync(`/proc/${op.pid}/status`, 'utf8');
        const kb = (field: string) =>
          Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
        return { rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 };
      };
      const secretWrites = async () =>
        (await op.metric('regcred_api_writes_total', { resource: 'secrets' })) ?? 0;
      // What the process keeps: RSS once a full collection has run. Garbage that passed
      // through is RSS too until V8 collects it, which its heuristics may put off for minutes
      // in an idle process (seen in CI: +18 MB for 90 s, all of it released by a collection).
      const kept = async () => {
        await op.collectGarbage();
        return memory();
      };
      await reconciledSinceNow(name);
      const before = await kept();

      // What `edit` in a namespace allows (through the API directly, for speed): 100 Secrets of
      // the type we write, with our labels, each 900 kB.
      const pad = 'x'.repeat(900 * 1024);
      const labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CREDENTIAL_LABEL]: name };
      for (let i = 0; i < 100; i += 10) {
        await Promise.all(
          Array.from({ length: 10 }, (_, j) =>
            f.core.createNamespacedSecret({
              namespace: ns,
              body: {
                metadata: { name: `spoof-${i + j}`, labels },
                type: DCJ,
                stringData: { '.dockerconfigjson': JSON.stringify({ auths: {}, pad }) },
              },
            }),
          ),
        );
      }
      await reconciledSinceNow(name);
      // Freed pages go back to the system as the sweeper finishes: wait for RSS to settle,
      // bounded, collecting before each reading.
      const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
      const settles = async (what: string, withinMB: number) => {
        try {
          return await waitFor(
            `RSS ${what} to settle within ${withinMB} MB of ${mb(before.rss)}`,
            () => kept(),
            (m) => m.rss - before.rss < withinMB * 1024 * 1024,
            { timeoutMs: 90_000, intervalMs: 1_000 },
          );
        } finally {
          const m = memory();
          process.stderr.write(
            `      RSS ${what}: ${mb(m.rss)} (peak ${mb(m.peak)}; before ${mb(before.rss)})\n`,
          );
        }
      };
      // The bound, in one process: the Secrets arriving raise RSS by under 10 MB.
      await settles('after watching 100 x 900 kB', 10);
      assert.equal(await secretWrites(), 0, 'no Secret written while they arrived');
      await op.stop();
      await op.start();
      await reconciledSinceNow(name);
      // A restart lists them all again, in a new process: it must not reach the Deployment's
      // 320Mi limit (before the fix: a 590 MB peak), and settles near the first process (two
      // fresh processes differ by up to ~20 MB here; before the fix, +300 MB).
      const after = await settles('after a restart that listed them', 25);
      assert.ok(
        after.peak < 320 * 1024 * 1024,
        `the restart peaked at ${mb(after.peak)}: OOM-killed at 320Mi`,
      );
      assert.equal(await secretWrites(), 0, 'the restarted operator wrote no Secret');
      for (let i = 0; i < 100; i += 25) {
        assert.ok(await f.secret(ns, `spoof-${i}`), 'and deleted nothing');
      }
    } finally {
      await op.stop();
      await cluster.startOperator();
    }
  });

  it('knows a conflict from its cache: no request per reconcile for it, and an adopt annotation acted on at once', async function () {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const ns = await tenantNamespace({ tenant });
    const secretName = uniqueName('pull');
    const tenantCtl = await asTenant(ns);
    await tenantCtl(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: secretName, namespace: ns },
        type: DCJ,
        data: { '.dockerconfigjson': b64('{"auths":{}}') },
      }),
    );
    const { name, password } = await credential({
      secretName,
      namespaceSelector: { matchLabels: { tenant } },
    });
    await f.waitCondition(name, 'Synced', 'False', 'Conflict');
    await reconciledSinceNow(name); // the name's cache has listed by now
    const secretRequests = async () =>
      (await cluster.operator.metric('regcred_api_requests_total', { resource: 'secrets' })) ?? 0;
    const before = await secretRequests();
    await reconciledSinceNow(name);
    await reconciledSinceNow(name);
    assert.equal(await secretRequests(), before, 'two full reconciles made no Secret request');
    assert.equal((await f.getCredential(name)).status?.failedNamespaces?.[0]?.reason, 'Conflict');

    const handedOver = Date.now();
    await tenantCtl(['annotate', 'secret', secretName, '-n', ns, `regcred.dev/adopt=${name}`]);
    await f.waitDockerConfig(ns, secretName, (cfg) => cfg.auths[SERVER]?.password === password, {
      timeoutMs: 20_000, // well inside the 60 s conflict recheck: the event did it
    });
    process.stderr.write(`      adopted ${Date.now() - handedOver} ms after the annotation\n`);
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
  });

  it('recreates its own Secret that a tenant made immutable, so that namespace gets the new credential', async function () {
    this.timeout(120_000);
    const tenant = uniqueName('tenant');
    const ns = await tenantNamespace({ tenant });
    const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const before = await f.secret(ns, name);
    const tenantCtl = await asTenant(ns);
    await tenantCtl([
      'patch',
      'secret',
      name,
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"immutable":true}',
    ]);
    const source = (await f.getCredential(name)).spec.registries[0]?.basic?.secretRef.name ?? '';
    const rotated = `pw-${randomBytes(6).toString('hex')}`;
    await f.setSecretData(OPERATOR_NAMESPACE, source, { password: rotated });
    const healed = await f.waitDockerConfig(
      ns,
      name,
      (cfg) => cfg.auths[SERVER]?.password === rotated,
    );
    assert.ok(healed);
    const after = await f.secret(ns, name);
    assert.notEqual(after?.metadata?.uid, before?.metadata?.uid, 'a new object');
    assert.notEqual(after?.immutable, true);
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
  });

  it('removes the entries it recorded after its finalizer was removed by hand while it was down', async function () {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const ns = await tenantNamespace({ tenant });
    await setPullSecrets(ns, 'default', [{ name: 'theirs' }]);
    const { name } = await credential({ namespaceSelector: { matchLabels: { tenant } } });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    await waitUntil('its entry', async () => (await entries(ns)).includes(name));

    await cluster.stopOperator();
    await f.patchCredential(name, { metadata: { finalizers: null } });
    await f.deleteCredential(name);
    await f.waitCredentialGone(name);
    // Garbage collection follows the ownerReference; the entry is left dangling.
    await f.waitSecretGone(ns, name, { timeoutMs: 90_000 });
    assert.deepEqual(await entries(ns), ['theirs', name]);

    await cluster.startOperator();
    await waitUntil(
      'the dangling entry to be removed',
      async () => !(await entries(ns)).includes(name),
    );
    assert.deepEqual(await entries(ns), ['theirs']);
    assert.equal(
      (await f.serviceAccount(ns))?.metadata?.annotations?.[PULL_SECRETS_ANNOTATION],
      undefined,
      'its record goes with it',
    );
    assert.ok(
      !(await f.getCredential(name).catch(() => undefined))?.metadata.finalizers?.includes(
        CLEANUP_FINALIZER,
      ),
    );
  });
});

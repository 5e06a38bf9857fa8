import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { findCondition } from '../../src/api/conditions.ts';
import type { RegistryCredentialSpec } from '../../src/api/types.ts';
import {
  CONFLICT_RETRY_MS,
  ORPHANED_ENTRIES_KEY,
  Reconciler,
  RetryableSyncError,
} from '../../src/controller/reconciler.ts';
import { TokenCache } from '../../src/credentials/token-cache.ts';
import { KubeApiError } from '../../src/kube/rest.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { InMemoryCluster } from '../support/in-memory-cluster.ts';

const OPERATOR_NS = 'regcred-system';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function spec(extra: Partial<RegistryCredentialSpec> = {}): RegistryCredentialSpec {
  return {
    namespaceSelector: { matchLabels: { tenant: 'acme' } },
    registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 'acme-basic' } } }],
    ...extra,
  };
}

interface Recorded {
  type: string;
  reason: string;
  message: string;
}

function setup() {
  const cluster = new InMemoryCluster();
  cluster.addNamespace(OPERATOR_NS);
  cluster.addSecret({
    metadata: {
      name: 'acme-basic',
      namespace: OPERATOR_NS,
      labels: { 'regcred.dev/source': 'true' },
    },
    type: 'Opaque',
    data: { username: b64('robot'), password: b64('s3cret') },
  });
  const events: Recorded[] = [];
  const reconciler = new Reconciler({
    view: cluster,
    api: cluster,
    events: {
      record: async (_cred, type, reason, message) => {
        events.push({ type, reason, message });
      },
    },
    log: silentLogger,
    policy: { operatorNamespace: OPERATOR_NS, allowedSourceNamespaces: new Set([OPERATOR_NS]) },
    fanoutConcurrency: 4,
    tokens: new TokenCache(),
    now: () => new Date('2026-06-01T00:00:00Z'),
  });
  return { cluster, reconciler, events };
}

function tenant(cluster: InMemoryCluster, name: string, entries: Array<{ name: string }> = []) {
  cluster.addNamespace(name, { tenant: 'acme' });
  cluster.addServiceAccount(name, 'default', entries);
}

function decodedConfig(secret: V1Secret | undefined): unknown {
  return JSON.parse(Buffer.from(secret?.data?.['.dockerconfigjson'] ?? '', 'base64').toString());
}

describe('Reconciler (against an in-memory cluster)', () => {
  it('writes a Secret and an entry in every target, then reports Ready with the counts', async () => {
    const { cluster, reconciler, events } = setup();
    tenant(cluster, 'team-a');
    tenant(cluster, 'team-b', [{ name: 'their-own' }]);
    cluster.addNamespace('other'); // not selected
    cluster.addCredential('acme', spec());

    const result = await reconciler.reconcile('acme');

    assert.deepEqual(result, {});
    assert.deepEqual(cluster.writes().sort(), [
      'create secrets team-a/acme',
      'create secrets team-b/acme',
      'patch registrycredentials acme',
      'patch registrycredentials acme/status',
      'update serviceaccounts team-a/default',
      'update serviceaccounts team-b/default',
    ]);
    assert.deepEqual(decodedConfig(cluster.secrets.get('team-a/acme')), {
      auths: {
        'registry.example.com': {
          username: 'robot',
          password: 's3cret',
          auth: b64('robot:s3cret'),
        },
      },
    });
    assert.deepEqual(cluster.accounts.get('team-b/default')?.imagePullSecrets, [
      { name: 'their-own' },
      { name: 'acme' },
    ]);
    assert.equal(cluster.secrets.has('other/acme'), false);
    const status = cluster.credentialObjects.get('acme')?.status;
    assert.equal(status?.targetNamespaces, 2);
    assert.equal(status?.syncedNamespaces, 2);
    assert.equal(findCondition(status?.conditions, 'Ready')?.status, 'True');
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.reason}`),
      ['Normal Ready'],
    );
  });

  it('writes nothing when replayed on a cluster that already matches', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    const before = cluster.calls.length;

    await reconciler.reconcile('acme');
    await reconciler.reconcile('acme');

    assert.deepEqual(cluster.calls.slice(before), []);
  });

  it('reports a Secret it does not own as a Conflict, leaves it alone, and rechecks later', async () => {
    const { cluster, reconciler, events } = setup();
    tenant(cluster, 'team-a');
    tenant(cluster, 'team-b');
    const theirs = cluster.addSecret({
      metadata: { name: 'acme', namespace: 'team-b' },
      type: 'Opaque',
      data: { token: b64('mine') },
    });
    cluster.addCredential('acme', spec());

    const result = await reconciler.reconcile('acme');

    assert.equal(result.requeueAfterMs, CONFLICT_RETRY_MS);
    assert.deepEqual(cluster.secrets.get('team-b/acme'), theirs);
    const status = cluster.credentialObjects.get('acme')?.status;
    assert.deepEqual(
      status?.failedNamespaces?.map((f) => [f.name, f.reason]),
      [['team-b', 'Conflict']],
    );
    assert.equal(findCondition(status?.conditions, 'Ready')?.reason, 'Conflict');
    assert.equal(status?.syncedNamespaces, 1);
    assert.ok(events.some((e) => e.type === 'Warning' && e.message.includes('team-b')));
  });

  it('removes its Secret and exactly its entry from a namespace that stops being a target', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a', [{ name: 'keep-me' }]);
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    assert.ok(cluster.secrets.has('team-a/acme'));

    cluster.addNamespace('team-a', { tenant: 'someone-else' });
    await reconciler.reconcile('acme');

    assert.equal(cluster.secrets.has('team-a/acme'), false);
    assert.deepEqual(cluster.accounts.get('team-a/default')?.imagePullSecrets, [
      { name: 'keep-me' },
    ]);
    assert.equal(
      findCondition(cluster.credentialObjects.get('acme')?.status?.conditions, 'Ready')?.reason,
      'NoTargets',
    );
  });

  it('cleans up everything and drops its finalizer when the credential is deleted', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    const cred = cluster.credentialObjects.get('acme');
    assert.ok(cred);
    cred.metadata.deletionTimestamp = new Date('2026-06-01T00:00:00Z');

    await reconciler.reconcile('acme');

    assert.equal(cluster.secrets.has('team-a/acme'), false);
    assert.deepEqual(cluster.accounts.get('team-a/default')?.imagePullSecrets, []);
    assert.equal(cluster.credentialObjects.has('acme'), false, 'finalizer removed, object gone');
  });

  it('writes status before retrying a namespace whose write failed', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    tenant(cluster, 'team-b');
    cluster.addCredential('acme', spec());
    cluster.failNext(
      (c) => c.verb === 'create' && c.key === 'team-b/acme',
      new KubeApiError(500, 'InternalError', 'etcdserver: request timed out'),
    );

    await assert.rejects(reconciler.reconcile('acme'), RetryableSyncError);

    const status = cluster.credentialObjects.get('acme')?.status;
    assert.equal(findCondition(status?.conditions, 'Synced')?.reason, 'PartiallySynced');
    assert.deepEqual(
      status?.failedNamespaces?.map((f) => f.name),
      ['team-b'],
    );
    assert.ok(cluster.secrets.has('team-a/acme'), 'the other namespace was written');

    await reconciler.reconcile('acme');
    assert.ok(cluster.secrets.has('team-b/acme'), 'the retry heals it');
    assert.equal(cluster.credentialObjects.get('acme')?.status?.failedNamespaces, undefined);
  });

  it("keeps another writer's entry when a ServiceAccount changes under it (409, re-read)", async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec());
    let raced = false;
    const replace = cluster.replaceServiceAccount.bind(cluster);
    cluster.replaceServiceAccount = async (sa) => {
      if (!raced) {
        raced = true; // someone else adds an entry between our read and our write
        const stored = cluster.accounts.get('team-a/default');
        assert.ok(stored);
        await replace({ ...stored, imagePullSecrets: [{ name: 'added-meanwhile' }] });
      }
      return replace(sa);
    };

    await reconciler.reconcile('acme');

    assert.deepEqual(cluster.accounts.get('team-a/default')?.imagePullSecrets, [
      { name: 'added-meanwhile' },
      { name: 'acme' },
    ]);
  });

  it('syncs one new namespace on the fast path without touching the others', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    tenant(cluster, 'team-new');
    tenant(cluster, 'team-later');
    const before = cluster.calls.length;

    const [result] = await reconciler.namespaces.reconcileNamespaces('team-new', ['acme']);

    assert.deepEqual(result, { status: 'fulfilled', value: {} });
    assert.deepEqual(
      cluster.calls.slice(before).map((c) => `${c.verb} ${c.resource} ${c.key}`),
      ['create secrets team-new/acme', 'update serviceaccounts team-new/default'],
    );
    assert.deepEqual(
      await reconciler.namespaces.reconcileNamespaces('other-namespace', ['acme']),
      [{ status: 'fulfilled', value: { fullReconcile: true } }],
      'a namespace it does not select is left to the full reconcile',
    );
  });

  it('syncs every credential due in a new namespace at once: their Secrets, then one write per ServiceAccount; each credential settled on its own result', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    const every = { serviceAccounts: ['*'] };
    cluster.addCredential('acme', spec(every));
    cluster.addCredential('beta', spec({ ...every, secretName: 'beta' }));
    cluster.addCredential('failing', spec({ ...every, secretName: 'failing' }));
    cluster.addCredential(
      'elsewhere',
      spec({ namespaceSelector: { matchLabels: { tenant: 'x' } } }),
    );
    for (const name of ['acme', 'beta', 'failing', 'elsewhere']) await reconciler.reconcile(name);
    tenant(cluster, 'team-new');
    cluster.addServiceAccount('team-new', 'builder', [{ name: 'their-own' }]);
    cluster.failNext(
      (c) => c.verb === 'create' && c.key === 'team-new/failing',
      new KubeApiError(500, 'InternalError', 'etcd leader changed'),
    );
    const before = cluster.calls.length;

    const results = await reconciler.namespaces.reconcileNamespaces('team-new', [
      'acme',
      'failing',
      'elsewhere',
      'beta',
    ]);

    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : 'rejected')),
      [{}, 'rejected', { fullReconcile: true }, {}],
      'the failing one is retried; the one not selecting the namespace goes to its full reconcile',
    );
    const rejected = results[1];
    assert.ok(rejected?.status === 'rejected' && rejected.reason instanceof RetryableSyncError);
    assert.deepEqual(
      cluster.calls.slice(before).map((c) => `${c.verb} ${c.resource} ${c.key}`),
      [
        'create secrets team-new/acme',
        'create secrets team-new/failing',
        'create secrets team-new/beta',
        'update serviceaccounts team-new/default',
        'update serviceaccounts team-new/builder',
      ],
    );
    assert.deepEqual(cluster.accounts.get('team-new/default')?.imagePullSecrets, [
      { name: 'acme' },
      { name: 'beta' },
    ]);
    assert.deepEqual(cluster.accounts.get('team-new/builder')?.imagePullSecrets, [
      { name: 'their-own' },
      { name: 'acme' },
      { name: 'beta' },
    ]);
  });

  it('reports an invalid selector as InvalidSpec and keeps existing Secrets', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    const cred = cluster.credentialObjects.get('acme');
    assert.ok(cred);
    cred.spec.namespaceSelector = {
      matchExpressions: [{ key: 'tenant', operator: 'In', values: [] }],
    };

    await reconciler.reconcile('acme');

    const ready = findCondition(cluster.credentialObjects.get('acme')?.status?.conditions, 'Ready');
    assert.equal(ready?.reason, 'InvalidSpec');
    assert.ok(cluster.secrets.has('team-a/acme'));
  });

  it('writes only status when suspended', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec({ suspend: true }));

    await reconciler.reconcile('acme');

    assert.deepEqual(cluster.writes(), ['patch registrycredentials acme/status']);
    const ready = findCondition(cluster.credentialObjects.get('acme')?.status?.conditions, 'Ready');
    assert.equal(ready?.reason, 'Suspended');
  });

  it('leaves an entry of its name that it never recorded, wherever it is', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addNamespace('elsewhere');
    cluster.addServiceAccount('elsewhere', 'default', [{ name: 'acme' }]);
    cluster.addServiceAccount('team-a', 'ci', [{ name: 'acme' }]);
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    const cred = cluster.credentialObjects.get('acme');
    assert.ok(cred);
    cred.metadata.deletionTimestamp = new Date('2026-06-01T00:00:00Z');
    await reconciler.reconcile('acme');

    assert.deepEqual(cluster.accounts.get('elsewhere/default')?.imagePullSecrets, [
      { name: 'acme' },
    ]);
    assert.deepEqual(cluster.accounts.get('team-a/ci')?.imagePullSecrets, [{ name: 'acme' }]);
    assert.deepEqual(cluster.accounts.get('team-a/default')?.imagePullSecrets, []);
  });

  it('sweeps recorded entries no credential claims, keeping one whose Secret belongs to someone', async () => {
    const { cluster, reconciler } = setup();
    cluster.addNamespace('t1');
    cluster.addServiceAccount('t1', 'default', [{ name: 'theirs' }, { name: 'gone' }], {
      'regcred.dev/pull-secrets': 'gone',
    });
    cluster.addNamespace('t2');
    cluster.addServiceAccount('t2', 'default', [{ name: 'kept' }], {
      'regcred.dev/pull-secrets': 'kept',
    });
    cluster.addSecret({ metadata: { name: 'kept', namespace: 't2' }, type: 'Opaque' });

    await reconciler.reconcile(ORPHANED_ENTRIES_KEY);

    assert.deepEqual(cluster.accounts.get('t1/default')?.imagePullSecrets, [{ name: 'theirs' }]);
    assert.equal(cluster.accounts.get('t1/default')?.metadata?.annotations, undefined);
    assert.deepEqual(cluster.accounts.get('t2/default')?.imagePullSecrets, [{ name: 'kept' }]);
  });

  it('never deletes a Secret labelled for it that it cannot prove it wrote', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    cluster.addCredential('acme', spec());
    await reconciler.reconcile('acme');
    const labels = {
      'app.kubernetes.io/managed-by': 'regcred-operator',
      'regcred.dev/credential': 'acme',
    };
    cluster.addSecret({
      metadata: { name: 'copy', namespace: 'team-a', labels },
      type: 'kubernetes.io/dockerconfigjson',
      data: {},
    });
    cluster.addNamespace('team-a', { tenant: 'other' });

    await reconciler.reconcile('acme');

    assert.equal(cluster.secrets.has('team-a/acme'), false, 'its own went');
    assert.ok(cluster.secrets.has('team-a/copy'), 'the copy stays');
  });

  it('throws for a namespace that keeps failing, but keeps the conflict recheck in the error', async () => {
    const { cluster, reconciler } = setup();
    tenant(cluster, 'team-a');
    tenant(cluster, 'team-b');
    cluster.addSecret({ metadata: { name: 'acme', namespace: 'team-b' }, type: 'Opaque' });
    tenant(cluster, 'team-c');
    cluster.addCredential('acme', spec());
    cluster.failNext(
      (c) => c.verb === 'create' && c.key === 'team-c/acme',
      new KubeApiError(403, 'Forbidden', 'exceeded quota: secrets'),
    );

    await assert.rejects(
      reconciler.reconcile('acme'),
      (e: unknown) => e instanceof RetryableSyncError && e.requeueAfterMs === CONFLICT_RETRY_MS,
    );
  });
});

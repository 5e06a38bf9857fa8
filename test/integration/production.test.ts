// Production readiness, as an operator of the operator sees it: the manifests apply, the
// ServiceAccount may do exactly what the operator needs, one replica writes at a time and hands
// over fast, the endpoints tell the truth, and a SIGTERM never leaves a half-done job behind.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  ApiException,
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Lease,
  type V1PolicyRule,
  type V1ResourceAttributes,
  Watch,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, type RegistryCredential, VERSION } from '../../src/api/types.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import {
  launchOperator,
  metricSum,
  type OperatorProcess,
  startOperator,
} from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const LEASE_NAME = 'regcred-operator';
const SERVER = 'registry.example.com';
const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:regcred-operator`;

function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  return (error as { code?: number }).code;
}

/** Runs `call` and asserts the API server refused it with 403 Forbidden. */
async function assertForbidden(what: string, call: () => Promise<unknown>): Promise<void> {
  let code: number | undefined;
  try {
    await call();
  } catch (error) {
    code = statusCode(error);
    if (code === undefined) throw error;
  }
  assert.equal(code, 403, `${what}: expected 403 Forbidden, got ${code ?? 'success'}`);
}

/** A KubeConfig that acts as `user` (the admin impersonating; no groups but system:authenticated). */
function impersonating(kc: KubeConfig, user: string): KubeConfig {
  const current = kc.getCurrentUser();
  const cluster_ = kc.getCurrentCluster();
  if (!current || !cluster_) throw new Error('the admin kubeconfig has no current user or cluster');
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [cluster_],
    users: [{ ...current, name: user, impersonateUser: user }],
    contexts: [{ name: user, cluster: cluster_.name, user }],
    currentContext: user,
  });
  return out;
}

function operatorKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.operatorKubeconfigPath);
  return kc;
}

/** Every resource the operator writes, as regcred_api_writes_total labels it. */
interface WriteTotals {
  secretsCreate: number;
  secretsUpdate: number;
  secretsDelete: number;
  serviceAccountsUpdate: number;
  credentialPatches: number;
  events: number;
  all: number;
}

async function writeTotals(ops: readonly OperatorProcess[]): Promise<WriteTotals> {
  const totals: WriteTotals = {
    secretsCreate: 0,
    secretsUpdate: 0,
    secretsDelete: 0,
    serviceAccountsUpdate: 0,
    credentialPatches: 0,
    events: 0,
    all: 0,
  };
  for (const op of ops) {
    const samples = await op.samples();
    const sum = (labels: Record<string, string>) =>
      metricSum(samples, 'regcred_api_writes_total', labels) ?? 0;
    totals.secretsCreate += sum({ resource: 'secrets', verb: 'create' });
    totals.secretsUpdate += sum({ resource: 'secrets', verb: 'update' });
    totals.secretsDelete += sum({ resource: 'secrets', verb: 'delete' });
    totals.serviceAccountsUpdate += sum({ resource: 'serviceaccounts', verb: 'update' });
    totals.credentialPatches += sum({ resource: PLURAL });
    totals.events += sum({ resource: 'events' });
    totals.all += sum({});
  }
  return totals;
}

function delta(after: WriteTotals, before: WriteTotals): WriteTotals {
  return {
    secretsCreate: after.secretsCreate - before.secretsCreate,
    secretsUpdate: after.secretsUpdate - before.secretsUpdate,
    secretsDelete: after.secretsDelete - before.secretsDelete,
    serviceAccountsUpdate: after.serviceAccountsUpdate - before.serviceAccountsUpdate,
    credentialPatches: after.credentialPatches - before.credentialPatches,
    events: after.events - before.events,
    all: after.all - before.all,
  };
}

/**
 * Waits until the operators have written nothing for `quietMs` (the wait is the measurement:
 * "nothing more is written"), and returns the totals then.
 */
async function settledWrites(
  ops: readonly OperatorProcess[],
  quietMs = 3_000,
  timeoutMs = 60_000,
): Promise<WriteTotals> {
  let last = await writeTotals(ops);
  let since = Date.now();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`writes did not settle: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
    const now = await writeTotals(ops);
    if (now.all !== last.all) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/**
 * Counts what the API server saw happen to objects, whoever wrote them: one ADDED or MODIFIED
 * watch event per effective write. Watches start from a list's resourceVersion, so only what
 * happens after start() counts.
 */
class ObjectWrites {
  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly counts = new Map<string, { added: number; modified: number }>();
  private readonly aborts: AbortController[] = [];
  readonly errors: string[] = [];

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async start(labelSelector: string): Promise<void> {
    const secrets = await this.core.listSecretForAllNamespaces({ labelSelector, limit: 1 });
    const sas = await this.core.listServiceAccountForAllNamespaces({ limit: 1 });
    await this.watch('secrets', secrets.metadata?.resourceVersion ?? '', labelSelector);
    await this.watch('serviceaccounts', sas.metadata?.resourceVersion ?? '');
  }

  private async watch(resource: string, resourceVersion: string, labelSelector?: string) {
    const abort = await new Watch(this.kc).watch(
      `/api/v1/${resource}`,
      { resourceVersion, timeoutSeconds: 1800, ...(labelSelector ? { labelSelector } : {}) },
      (phase: string, obj: { metadata?: { namespace?: string; name?: string } }) => {
        const key = `${resource}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
        const c = this.counts.get(key) ?? { added: 0, modified: 0 };
        if (phase === 'ADDED') c.added += 1;
        if (phase === 'MODIFIED') c.modified += 1;
        this.counts.set(key, c);
      },
      (err: unknown) => {
        if (err && !this.stopped) this.errors.push(String(err));
      },
    );
    this.aborts.push(abort);
  }

  private stopped = false;

  of(resource: 'secrets' | 'serviceaccounts', namespace: string, name: string) {
    return this.counts.get(`${resource}/${namespace}/${name}`) ?? { added: 0, modified: 0 };
  }

  stop(): void {
    this.stopped = true;
    for (const abort of this.aborts) abort.abort();
  }
}

/**
 * Runs cleanup steps newest first; a 404 is fine, other failures are reported but never hide
 * the test's own outcome.
 */
async function undoAll(steps: Array<() => Promise<unknown>>): Promise<void> {
  for (const step of steps.splice(0).reverse()) {
    try {
      await step();
    } catch (error) {
      if (statusCode(error) !== 404) process.stderr.write(`cleanup failed: ${String(error)}\n`);
    }
  }
}

/**
 * How the proxy between a replica and the API server misbehaves:
 * - `forward`: a plain TCP proxy;
 * - `silent`: nothing is forwarded either way, nothing is closed (a dead network);
 * - `swallow`: TLS handshakes complete, but requests never reach the server and the client hears
 *   nothing more on that connection: a partition that begins while a request is in flight.
 */
type ProxyMode = 'forward' | 'silent' | 'swallow';

const TLS_APPLICATION_DATA = 0x17;

/**
 * Splits a client's TLS stream into records so `swallow` can drop requests but keep
 * handshakes: in TLS 1.3 the client's first application-data record is its encrypted Finished
 * message, every later one carries HTTP.
 */
class TlsRecords {
  private pending = Buffer.alloc(0);
  private applicationRecords = 0;

  /** The complete records in `chunk`, each with whether it carries a request. */
  *split(chunk: Buffer): Generator<{ record: Buffer; request: boolean }> {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const length = this.pending.readUInt16BE(3);
      if (this.pending.length < 5 + length) return;
      const record = this.pending.subarray(0, 5 + length);
      this.pending = this.pending.subarray(5 + length);
      let request = false;
      if (record[0] === TLS_APPLICATION_DATA) {
        this.applicationRecords += 1;
        request = this.applicationRecords > 1;
      }
      yield { record, request };
    }
  }
}

/** A TCP proxy to the API server whose forwarding a test can break (see ProxyMode). */
class BlackHoleProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  mode: ProxyMode = 'forward';

  private constructor(target: number) {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => {});
      if (this.mode === 'silent') return;
      const upstream = connect(target, '127.0.0.1');
      this.sockets.add(upstream);
      upstream.on('close', () => this.sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      // Once a request has been swallowed the connection is cut for good: nothing the server
      // sends (an answer to something else, or closing) reaches the client.
      let cut = false;
      upstream.on('close', () => {
        if (!cut) client.destroy();
      });
      const records = new TlsRecords();
      client.on('data', (chunk: Buffer) => {
        for (const { record, request } of records.split(chunk)) {
          if (this.mode === 'swallow' && request) cut = true;
          if (this.mode === 'forward' || (this.mode === 'swallow' && !cut)) upstream.write(record);
        }
      });
      upstream.on('data', (chunk: Buffer) => {
        if (this.mode !== 'silent' && !cut) client.write(chunk);
      });
    });
  }

  static async start(target: number): Promise<BlackHoleProxy> {
    const proxy = new BlackHoleProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Runs `task` over `items`, `limit` at a time. */
async function inBatches<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

describe('production readiness', () => {
  let f: Fixtures;
  before(() => {
    f = new Fixtures(cluster.kc);
  });

  /** A basic source Secret in the operator's namespace and a credential over `spec` targets. */
  async function basicCredential(
    spec: { namespaceSelector?: { matchLabels: Record<string, string> }; namespaces?: string[] },
    name = uniqueName('rc'),
    password = `pw-${uniqueName('prod')}`,
  ): Promise<{ name: string; source: string }> {
    const source = uniqueName('src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', password);
    await f.createCredential(name, {
      ...spec,
      registries: [{ server: SERVER, basic: { secretRef: { name: source } } }],
    });
    return { name, source };
  }

  async function deleteCredentialQuietly(name: string, wait = true): Promise<void> {
    try {
      await f.deleteCredential(name);
      if (wait) await f.waitCredentialGone(name, { timeoutMs: 180_000 });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
    }
  }

  describe('the manifests', () => {
    it('`kubectl apply --dry-run=server -k config/default` succeeds against the control plane', async () => {
      // The CRD, the namespace and config/rbac already exist here: a dry run over existing
      // objects must pass too (it is how an upgrade is checked).
      const result = await cluster.kubectl(
        ['apply', '--dry-run=server', '-k', join(repoRoot, 'config', 'default')],
        { timeoutMs: 120_000 },
      );
      assert.equal(result.code, 0, `kubectl exited ${result.code}: ${result.stderr}`);
      for (const object of [
        'namespace/regcred-system',
        `customresourcedefinition.apiextensions.k8s.io/registrycredentials.${GROUP}`,
        'serviceaccount/regcred-operator',
        'clusterrole.rbac.authorization.k8s.io/regcred-operator',
        'clusterrole.rbac.authorization.k8s.io/regcred-view',
        'clusterrole.rbac.authorization.k8s.io/regcred-edit',
        'clusterrolebinding.rbac.authorization.k8s.io/regcred-operator',
        'role.rbac.authorization.k8s.io/regcred-operator',
        'rolebinding.rbac.authorization.k8s.io/regcred-operator',
        'deployment.apps/regcred-operator',
        'service/regcred-operator-metrics',
      ]) {
        assert.match(result.stdout, new RegExp(`^${object} .*\\(server dry run\\)$`, 'm'), object);
      }
      assert.doesNotMatch(result.stderr, /error/i);
      // A dry run writes nothing.
      const deployment = await cluster.kubectl([
        'get',
        'deployment',
        'regcred-operator',
        '-n',
        OPERATOR_NAMESPACE,
      ]);
      assert.notEqual(deployment.code, 0, 'the dry run must not create the Deployment');
    });
  });

  describe('RBAC', () => {
    it('runs the suite operator as the config/rbac ServiceAccount, allowed what it needs and refused the rest', async () => {
      const kc = operatorKubeConfig();
      const review = await kc
        .makeApiClient(AuthenticationV1Api)
        .createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1' } });
      assert.equal(review.status?.userInfo?.username, OPERATOR_USER);
      assert.ok(
        cluster.operator.options.kubeconfigPath === cluster.operatorKubeconfigPath,
        'the suite operator uses the ServiceAccount kubeconfig',
      );

      const tenantNs = await f.namespace('rbac-target');
      const authz = kc.makeApiClient(AuthorizationV1Api);
      const can = async (attrs: V1ResourceAttributes): Promise<boolean> => {
        const r = await authz.createSelfSubjectAccessReview({
          body: { spec: { resourceAttributes: attrs } },
        });
        return r.status?.allowed === true;
      };
      const needs: Array<[string, V1ResourceAttributes]> = [
        ['watch RegistryCredentials', { group: GROUP, resource: PLURAL, verb: 'watch' }],
        [
          'patch RegistryCredential status',
          { group: GROUP, resource: PLURAL, subresource: 'status', verb: 'patch' },
        ],
        [
          'patch a RegistryCredential (its finalizer)',
          { group: GROUP, resource: PLURAL, verb: 'patch' },
        ],
        ['watch namespaces', { resource: 'namespaces', verb: 'watch' }],
        ['watch serviceaccounts', { resource: 'serviceaccounts', verb: 'watch' }],
        [
          'update a tenant ServiceAccount',
          { namespace: tenantNs, resource: 'serviceaccounts', verb: 'update' },
        ],
        ['create a tenant Secret', { namespace: tenantNs, resource: 'secrets', verb: 'create' }],
        ['update a tenant Secret', { namespace: tenantNs, resource: 'secrets', verb: 'update' }],
        ['delete a tenant Secret', { namespace: tenantNs, resource: 'secrets', verb: 'delete' }],
        ['create Events', { namespace: 'default', resource: 'events', verb: 'create' }],
        [
          'renew its Lease',
          {
            namespace: OPERATOR_NAMESPACE,
            group: 'coordination.k8s.io',
            resource: 'leases',
            verb: 'update',
          },
        ],
      ];
      const mustNot: Array<[string, V1ResourceAttributes]> = [
        ['create RegistryCredentials', { group: GROUP, resource: PLURAL, verb: 'create' }],
        // Least privilege (#14): what the code never calls is not granted.
        ['update RegistryCredentials', { group: GROUP, resource: PLURAL, verb: 'update' }],
        [
          'update RegistryCredential finalizers (ownerReferences do not block deletion)',
          { group: GROUP, resource: PLURAL, subresource: 'finalizers', verb: 'update' },
        ],
        [
          'create events.k8s.io Events',
          { namespace: 'default', group: 'events.k8s.io', resource: 'events', verb: 'create' },
        ],
        [
          'delete its Lease',
          {
            namespace: OPERATOR_NAMESPACE,
            group: 'coordination.k8s.io',
            resource: 'leases',
            verb: 'delete',
          },
        ],
        ['delete RegistryCredentials', { group: GROUP, resource: PLURAL, verb: 'delete' }],
        ['delete a namespace', { resource: 'namespaces', verb: 'delete' }],
        ['update a namespace', { resource: 'namespaces', verb: 'update' }],
        ['create pods', { namespace: tenantNs, resource: 'pods', verb: 'create' }],
        [
          'create ServiceAccounts',
          { namespace: tenantNs, resource: 'serviceaccounts', verb: 'create' },
        ],
        [
          'mint ServiceAccount tokens',
          {
            namespace: tenantNs,
            resource: 'serviceaccounts',
            subresource: 'token',
            verb: 'create',
          },
        ],
        [
          'create ClusterRoles',
          { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'create' },
        ],
        [
          'bind ClusterRoles',
          { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'bind' },
        ],
        [
          'escalate ClusterRoles',
          { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'escalate' },
        ],
        [
          'create RoleBindings',
          {
            namespace: OPERATOR_NAMESPACE,
            group: 'rbac.authorization.k8s.io',
            resource: 'rolebindings',
            verb: 'create',
          },
        ],
        ['impersonate users', { resource: 'users', verb: 'impersonate', name: 'admin' }],
        [
          'take another controller’s Lease',
          {
            namespace: 'kube-system',
            group: 'coordination.k8s.io',
            resource: 'leases',
            verb: 'update',
          },
        ],
      ];
      const story: string[] = [];
      for (const [what, attrs] of needs) {
        assert.equal(await can(attrs), true, `the operator must be allowed to ${what}`);
        story.push(`  can     ${what}`);
      }
      for (const [what, attrs] of mustNot) {
        assert.equal(await can(attrs), false, `the operator must not be allowed to ${what}`);
        story.push(`  cannot  ${what}`);
      }
      process.stdout.write(`      ${OPERATOR_USER}:\n${story.map((l) => `    ${l}`).join('\n')}\n`);

      // And the API server refuses the real requests, not just the review.
      const core = kc.makeApiClient(CoreV1Api);
      const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
      await assertForbidden('delete a namespace', () => core.deleteNamespace({ name: tenantNs }));
      assert.ok(await f.core.readNamespace({ name: tenantNs }), 'the namespace is still there');
      await assertForbidden('create a pod', () =>
        core.createNamespacedPod({
          namespace: tenantNs,
          body: {
            metadata: { name: 'sneaky' },
            spec: { containers: [{ name: 'c', image: 'registry.example.com/x:1' }] },
          },
        }),
      );
      await assertForbidden('create a ClusterRole', () =>
        rbac.createClusterRole({
          body: {
            metadata: { name: uniqueName('sneaky') },
            rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }],
          },
        }),
      );
      await assertForbidden('create a RoleBinding', () =>
        rbac.createNamespacedRoleBinding({
          namespace: OPERATOR_NAMESPACE,
          body: {
            metadata: { name: uniqueName('sneaky') },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
            subjects: [
              { kind: 'ServiceAccount', name: 'regcred-operator', namespace: OPERATOR_NAMESPACE },
            ],
          },
        }),
      );
      await assertForbidden('bind cluster-admin to itself', () =>
        rbac.createClusterRoleBinding({
          body: {
            metadata: { name: uniqueName('escalate') },
            roleRef: {
              apiGroup: 'rbac.authorization.k8s.io',
              kind: 'ClusterRole',
              name: 'cluster-admin',
            },
            subjects: [
              { kind: 'ServiceAccount', name: 'regcred-operator', namespace: OPERATOR_NAMESPACE },
            ],
          },
        }),
      );
      await assertForbidden('widen its own ClusterRole', () =>
        rbac.patchClusterRole({
          name: 'regcred-operator',
          body: [
            {
              op: 'add',
              path: '/rules/-',
              value: { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
            },
          ],
        }),
      );
      await assertForbidden('create a RegistryCredential', () =>
        kc.makeApiClient(CustomObjectsApi).createClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          body: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: 'RegistryCredential',
            metadata: { name: uniqueName('sneaky') },
            spec: {
              namespaces: ['default'],
              registries: [{ dockerConfig: { secretRef: { name: 'x' } } }],
            },
          },
        }),
      );
      await f.core.deleteNamespace({ name: tenantNs });
    });

    it('lets tenants read RegistryCredentials through view/edit, and only regcred-edit write them', async function (this: Mocha.Context) {
      this.timeout(180_000);
      const rbac = cluster.kc.makeApiClient(RbacAuthorizationV1Api);
      // The clusterrole-aggregation controller copies regcred-view's rules into view, edit and
      // admin; wait for it.
      const grantsRead = (rules: V1PolicyRule[] | undefined) =>
        (rules ?? []).some(
          (r) =>
            r.apiGroups?.includes(GROUP) &&
            r.resources?.includes(PLURAL) &&
            ['get', 'list', 'watch'].every((v) => r.verbs.includes(v)),
        );
      for (const role of ['view', 'edit', 'admin']) {
        await waitUntil(
          `ClusterRole ${role} to aggregate regcred-view`,
          async () => grantsRead((await rbac.readClusterRole({ name: role })).rules),
          { timeoutMs: 60_000, intervalMs: 250 },
        );
      }
      for (const role of ['view', 'edit', 'admin']) {
        const rules = (await rbac.readClusterRole({ name: role })).rules ?? [];
        const writes = rules.filter(
          (r) =>
            r.apiGroups?.includes(GROUP) &&
            r.resources?.some((x) => x === PLURAL || x === '*') &&
            r.verbs.some((v) => ['create', 'update', 'patch', 'delete', '*'].includes(v)),
        );
        assert.deepEqual(writes, [], `ClusterRole ${role} must not grant writes on ${PLURAL}`);
      }

      const owned = await basicCredential({ namespaces: ['default'] });
      const made: Array<() => Promise<unknown>> = [];
      try {
        const bind = async (
          user: string,
          role: string,
          namespace?: string,
        ): Promise<KubeConfig> => {
          const name = uniqueName('tenant-binding');
          const body = {
            metadata: { name },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
            subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
          };
          if (namespace) {
            await rbac.createNamespacedRoleBinding({ namespace, body });
            made.push(() => rbac.deleteNamespacedRoleBinding({ namespace, name }));
          } else {
            await rbac.createClusterRoleBinding({ body });
            made.push(() => rbac.deleteClusterRoleBinding({ name }));
          }
          return impersonating(cluster.kc, user);
        };
        const api = (kc: KubeConfig) => {
          const custom = kc.makeApiClient(CustomObjectsApi);
          const ref = { group: GROUP, version: VERSION, plural: PLURAL };
          return {
            get: () => custom.getClusterCustomObject({ ...ref, name: owned.name }),
            list: () => custom.listClusterCustomObject(ref),
            create: () =>
              custom.createClusterCustomObject({
                ...ref,
                body: {
                  apiVersion: `${GROUP}/${VERSION}`,
                  kind: 'RegistryCredential',
                  metadata: { name: uniqueName('tenant-made') },
                  spec: {
                    namespaces: ['default'],
                    registries: [{ dockerConfig: { secretRef: { name: 'x' } } }],
                  },
                },
              }),
            patch: () =>
              custom.patchClusterCustomObject({
                ...ref,
                name: owned.name,
                body: [{ op: 'add', path: '/spec/namespaces/-', value: 'kube-system' }],
              }),
            delete: () => custom.deleteClusterCustomObject({ ...ref, name: owned.name }),
          };
        };

        // A tenant with the built-in edit role in its own namespace: writes are refused. A
        // RegistryCredential is cluster-scoped, so a namespaced binding grants no read either:
        // Kubernetes applies a RoleBinding's rules only inside its namespace.
        const tenantNs = await f.namespace('tenant');
        made.push(() => f.core.deleteNamespace({ name: tenantNs }));
        const tenant = api(await bind(uniqueName('tenant-user'), 'edit', tenantNs));
        await assertForbidden('tenant (edit in its namespace) creates', tenant.create);
        await assertForbidden('tenant (edit in its namespace) patches', tenant.patch);
        await assertForbidden('tenant (edit in its namespace) deletes', tenant.delete);
        await assertForbidden('tenant (edit in its namespace) gets', tenant.get);
        await assertForbidden('tenant (edit in its namespace) lists', tenant.list);

        // view or edit bound cluster-wide: read, never write.
        for (const role of ['view', 'edit']) {
          const user = api(await bind(uniqueName(`${role}-user`), role));
          const got = (await user.get()) as RegistryCredential;
          assert.equal(got.metadata.name, owned.name, `${role}: get`);
          const listed = (await user.list()) as { items: RegistryCredential[] };
          assert.ok(
            listed.items.some((c) => c.metadata.name === owned.name),
            `${role}: list`,
          );
          await assertForbidden(`${role} (cluster-wide) creates`, user.create);
          await assertForbidden(`${role} (cluster-wide) patches`, user.patch);
          await assertForbidden(`${role} (cluster-wide) deletes`, user.delete);
        }

        // regcred-edit is what a cluster admin binds on purpose: it may write.
        const editor = api(await bind(uniqueName('regcred-editor'), 'regcred-edit'));
        const created = (await editor.create()) as RegistryCredential;
        made.push(() => deleteCredentialQuietly(created.metadata.name ?? '', false));
        assert.ok(created.metadata.name);
      } finally {
        await undoAll(made);
        await deleteCredentialQuietly(owned.name);
      }
    });
  });

  describe('metrics and health endpoints', () => {
    it('exposes controller-runtime and product metrics that agree with the status', async function (this: Mocha.Context) {
      this.timeout(120_000);
      const tenant = uniqueName('tenant');
      const namespaces = [
        await f.namespace('metrics', { tenant }),
        await f.namespace('metrics', { tenant }),
      ];
      const { name } = await basicCredential({ namespaceSelector: { matchLabels: { tenant } } });
      try {
        const cred = await f.waitCondition(name, 'Ready', 'True');
        assert.equal(cred.status?.targetNamespaces, 2);
        const op = cluster.operator;
        // The gauges follow the status write; poll until the reconcile that wrote it is counted.
        const samples = await waitFor(
          'metrics of the reconcile',
          () => op.samples(),
          (s) =>
            metricSum(s, 'regcred_synced_namespaces', { registrycredential: name }) ===
              cred.status?.syncedNamespaces &&
            (metricSum(s, 'controller_runtime_reconcile_total') ?? 0) > 0 &&
            metricSum(s, 'controller_runtime_reconcile_total') ===
              metricSum(s, 'controller_runtime_reconcile_time_seconds_count'),
        );
        const text = await op.metrics();
        const value = (metric: string, labels: Record<string, string> = {}) =>
          metricSum(samples, metric, labels);
        const family = (metric: string) =>
          assert.match(text, new RegExp(`^# TYPE ${metric} `, 'm'), `${metric} is exposed`);

        for (const metric of [
          'controller_runtime_reconcile_total',
          'controller_runtime_reconcile_errors_total',
          'controller_runtime_reconcile_time_seconds',
          'workqueue_depth',
          'workqueue_adds_total',
          'workqueue_queue_duration_seconds',
          'workqueue_retries_total',
          'leader_election_master_status',
          'regcred_target_namespaces',
          'regcred_synced_namespaces',
          'regcred_api_writes_total',
          'process_resident_memory_bytes',
        ]) {
          family(metric);
        }
        const reconciles = value('controller_runtime_reconcile_total') ?? 0;
        assert.ok(reconciles > 0, 'reconcile_total > 0');
        const results = new Set(
          samples
            .filter((s) => s.name === 'controller_runtime_reconcile_total')
            .map((s) => s.labels.result),
        );
        for (const result of results) {
          assert.ok(
            ['success', 'error', 'requeue_after'].includes(result ?? ''),
            `result=${result}`,
          );
        }
        assert.ok(
          (value('controller_runtime_reconcile_total', { result: 'success' }) ?? 0) > 0,
          'a successful reconcile is counted',
        );
        // Series a dashboard divides by must exist before the first error or retry.
        const errors = value('controller_runtime_reconcile_errors_total');
        assert.notEqual(
          errors,
          undefined,
          'reconcile_errors_total has a series (0 until an error)',
        );
        assert.ok((errors ?? 0) <= reconciles);
        assert.equal(
          value('controller_runtime_reconcile_time_seconds_count'),
          reconciles,
          'every reconcile is timed',
        );
        assert.ok(
          (value('controller_runtime_reconcile_time_seconds_bucket', { le: '+Inf' }) ?? 0) ===
            reconciles,
        );
        assert.ok((value('workqueue_depth') ?? -1) >= 0, 'workqueue_depth');
        assert.ok((value('workqueue_adds_total') ?? 0) >= reconciles, 'workqueue_adds_total');
        assert.ok(
          (value('workqueue_queue_duration_seconds_bucket', { le: '+Inf' }) ?? 0) > 0,
          'workqueue_queue_duration_seconds',
        );
        assert.notEqual(
          value('workqueue_retries_total'),
          undefined,
          'workqueue_retries_total has a series (0 until a retry)',
        );
        assert.equal(
          value('regcred_target_namespaces', { registrycredential: name }),
          cred.status?.targetNamespaces,
        );
        assert.equal(
          value('regcred_synced_namespaces', { registrycredential: name }),
          cred.status?.syncedNamespaces,
        );
        assert.ok(
          (value('regcred_api_writes_total', { resource: 'secrets', verb: 'create' }) ?? 0) >= 2,
          'the two Secrets were counted',
        );
        const rss = value('process_resident_memory_bytes') ?? 0;
        assert.ok(rss > 10e6 && rss < 2e9, `process_resident_memory_bytes ${rss}`);
        process.stdout.write(
          `      reconciles=${reconciles} writes=${value('regcred_api_writes_total')} rss=${Math.round(rss / 1e6)}MB\n`,
        );
        for (const ns of namespaces) await f.core.deleteNamespace({ name: ns });
      } finally {
        await deleteCredentialQuietly(name);
      }
    });

    it('drops the per-credential series when a RegistryCredential is deleted', async function (this: Mocha.Context) {
      this.timeout(120_000);
      const ns = await f.namespace('metrics-gone');
      const { name } = await basicCredential({ namespaces: [ns] });
      await f.waitCondition(name, 'Ready', 'True');
      const op = cluster.operator;
      await waitUntil(
        'the gauge to appear',
        async () =>
          (await op.metric('regcred_target_namespaces', { registrycredential: name })) === 1,
      );
      await deleteCredentialQuietly(name);
      await f.core.deleteNamespace({ name: ns });
      // Left behind, every deleted credential would stay a series forever (and a stale 1 in a
      // "targets but not synced" alert).
      await waitUntil(
        'the per-credential gauges to be removed',
        async () => {
          const s = await op.samples();
          return (
            metricSum(s, 'regcred_target_namespaces', { registrycredential: name }) === undefined &&
            metricSum(s, 'regcred_synced_namespaces', { registrycredential: name }) === undefined
          );
        },
        { timeoutMs: 30_000 },
      );
    });

    it('keeps /readyz at 503 while a cache cannot sync, and turns 200 once it can', async function (this: Mocha.Context) {
      this.timeout(240_000);
      const rbac = cluster.kc.makeApiClient(RbacAuthorizationV1Api);
      const sa = uniqueName('regcred-partial');
      // The operator's rights, except reading ServiceAccounts: that informer can never list.
      const full = await rbac.readClusterRole({ name: 'regcred-operator' });
      const partialRules = (full.rules ?? []).filter(
        (r) => !r.resources?.includes('serviceaccounts'),
      );
      assert.ok(partialRules.length < (full.rules ?? []).length);
      const undo: Array<() => Promise<unknown>> = [];
      let op: OperatorProcess | undefined;
      await cluster.stopOperator();
      try {
        await f.core.createNamespacedServiceAccount({
          namespace: OPERATOR_NAMESPACE,
          body: { metadata: { name: sa } },
        });
        undo.push(() =>
          f.core.deleteNamespacedServiceAccount({ namespace: OPERATOR_NAMESPACE, name: sa }),
        );
        await rbac.createClusterRole({ body: { metadata: { name: sa }, rules: partialRules } });
        undo.push(() => rbac.deleteClusterRole({ name: sa }));
        const subjects = [{ kind: 'ServiceAccount', name: sa, namespace: OPERATOR_NAMESPACE }];
        await rbac.createClusterRoleBinding({
          body: {
            metadata: { name: sa },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: sa },
            subjects,
          },
        });
        undo.push(() => rbac.deleteClusterRoleBinding({ name: sa }));
        await rbac.createNamespacedRoleBinding({
          namespace: OPERATOR_NAMESPACE,
          body: {
            metadata: { name: sa },
            roleRef: {
              apiGroup: 'rbac.authorization.k8s.io',
              kind: 'Role',
              name: 'regcred-operator',
            },
            subjects,
          },
        });
        undo.push(() =>
          rbac.deleteNamespacedRoleBinding({ namespace: OPERATOR_NAMESPACE, name: sa }),
        );
        const token = (
          await cluster.kubectlOk(['create', 'token', sa, '-n', OPERATOR_NAMESPACE])
        ).trim();
        const kubeconfigPath = cluster.controlPlane.writeKubeconfigFor(
          join(cluster.controlPlane.dir, `${sa}.kubeconfig`),
          sa,
          token,
        );

        op = await launchOperator({
          kubeconfigPath,
          namespace: OPERATOR_NAMESPACE,
          sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        });
        const started = op.startedAt;
        const running = op;
        // From the first answer on, /readyz says 503 and /healthz 200 (not broken for long yet).
        const first = await waitFor(
          'the health endpoint to answer',
          () => running.probe('/readyz'),
          (s) => s !== 0,
          {
            timeoutMs: 30_000,
            intervalMs: 20,
          },
        );
        assert.equal(first, 503, 'the first /readyz answer');
        // Time is the scenario: /readyz must stay 503 for as long as the cache cannot list, so
        // it is sampled over 5 s (every 100 ms) rather than awaited once.
        const seen = new Set<number>();
        const until = Date.now() + 5_000;
        while (Date.now() < until) {
          seen.add(await running.probe('/readyz'));
          assert.equal(await running.probe('/healthz'), 200, '/healthz while still within budget');
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(
          [...seen],
          [503],
          '/readyz stays 503 while the ServiceAccount cache cannot list',
        );
        assert.equal(
          (await running.metric('regcred_api_writes_total')) ?? 0,
          0,
          'no writes before sync',
        );
        assert.ok(
          running.logs.some((l) => /serviceaccounts/.test(l) && /forbidden|403/i.test(l)),
          'the logs say which informer fails and why',
        );

        // A SIGTERM before the caches ever synced is still a clean stop.
        const early = await launchOperator({
          kubeconfigPath,
          namespace: OPERATOR_NAMESPACE,
          sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        });
        await waitUntil(
          'the second operator to answer',
          async () => (await early.probe('/readyz')) === 503,
          {
            timeoutMs: 30_000,
            intervalMs: 20,
          },
        );
        const termAt = Date.now();
        const earlyCode = await early.stop();
        process.stdout.write(
          `      SIGTERM before sync: exit ${earlyCode} in ${Date.now() - termAt} ms\n`,
        );
        assert.equal(earlyCode, 0, 'SIGTERM before the caches synced exits 0');

        const granted = Date.now();
        await rbac.createClusterRoleBinding({
          body: {
            metadata: { name: `${sa}-full` },
            roleRef: {
              apiGroup: 'rbac.authorization.k8s.io',
              kind: 'ClusterRole',
              name: 'regcred-operator',
            },
            subjects,
          },
        });
        undo.push(() => rbac.deleteClusterRoleBinding({ name: `${sa}-full` }));
        await running.waitReady(90_000);
        process.stdout.write(
          `      /readyz 503 for ${granted - started} ms until the grant, 200 ${Date.now() - granted} ms after it\n`,
        );
        assert.equal(await running.probe('/healthz'), 200);
        assert.equal(await running.stop(), 0);
      } finally {
        await op?.stop();
        await undoAll(undo);
        await cluster.startOperator();
      }
    });

    it('keeps /healthz passing while the API server stays unreachable past the informer budget (liveness is local, ADR 0007), reports the outage in its body, and recovers', async function (this: Mocha.Context) {
      // A dedicated operator with a 10 s budget (--informer-unhealthy-after; default 60 s).
      this.timeout(360_000);
      await cluster.stopOperator();
      const op = await startOperator({
        kubeconfigPath: cluster.operatorKubeconfigPath,
        namespace: OPERATOR_NAMESPACE,
        sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        args: ['--informer-unhealthy-after=10s'],
      });
      try {
        assert.equal(await op.probe('/healthz'), 200);
        const plane = cluster.controlPlane;
        let unhealthyAfter = 0;
        // Measured from the stop request: the API server stops answering as soon as it gets it.
        const stoppedAt = Date.now();
        await plane.stopApiServer();
        const statuses = new Set<number>();
        try {
          const reported = await waitFor(
            '/healthz to report the outage in its body',
            async () => {
              const answer = await op.httpGet(op.healthPort, '/healthz');
              statuses.add(answer.status);
              return answer;
            },
            (answer) => /failing/.test(answer.body),
            { timeoutMs: 150_000, intervalMs: 500 },
          );
          unhealthyAfter = Date.now() - stoppedAt;
          assert.equal(reported.status, 200, 'a restart cannot bring the API server back');
          assert.match(reported.body, /^ok: .*failing/);
          // Serving from a synced cache: still ready, so a rolling update does not stall.
          assert.equal(await op.probe('/readyz'), 200);
        } finally {
          await plane.startApiServer();
        }
        const restarted = Date.now();
        await waitFor(
          '/healthz to report no failure again',
          () => op.httpGet(op.healthPort, '/healthz'),
          (answer) => answer.status === 200 && !/failing/.test(answer.body),
          { timeoutMs: 120_000, intervalMs: 250 },
        );
        process.stdout.write(
          `      /healthz reported the outage (still 200) ${unhealthyAfter} ms after the API server stopped; clear again ${Date.now() - restarted} ms after it returned\n`,
        );
        assert.deepEqual([...statuses], [200], '/healthz never failed during the outage');
        assert.ok(unhealthyAfter >= 9_000, 'not reported before the budget');
        assert.ok(op.running, 'the operator survived the outage');
        // And it works again: a new credential is synced.
        const ns = await f.namespace('after-outage');
        const { name } = await basicCredential({ namespaces: [ns] });
        try {
          await f.waitCondition(name, 'Ready', 'True', undefined, { timeoutMs: 90_000 });
          await f.waitPullSecrets(ns, 'default', (n) => n.includes(name));
        } finally {
          await deleteCredentialQuietly(name);
          await f.core.deleteNamespace({ name: ns });
        }
      } finally {
        await op.stop();
        await cluster.startOperator();
      }
    });
  });

  describe('leader election', () => {
    const lease = async (): Promise<V1Lease | undefined> => {
      try {
        return await cluster.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({
          name: LEASE_NAME,
          namespace: OPERATOR_NAMESPACE,
        });
      } catch (error) {
        if (statusCode(error) === 404) return undefined;
        throw error;
      }
    };
    const leading = (op: OperatorProcess) =>
      op.metric('leader_election_master_status', { name: LEASE_NAME });
    const replica = (identity: string, kubeconfigPath = cluster.operatorKubeconfigPath) =>
      startOperator({
        kubeconfigPath,
        namespace: OPERATOR_NAMESPACE,
        sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        leaderElect: true,
        identity,
      });

    it('elects one writer, fails over after a crash and hands over on SIGTERM, never writing twice', async function (this: Mocha.Context) {
      this.timeout(360_000);
      const ops: OperatorProcess[] = [];
      const writes = new ObjectWrites(cluster.kc);
      let credential: string | undefined;
      // The suite's operator runs without leader election: it must not write alongside.
      await cluster.stopOperator();
      try {
        const [a, b] = await Promise.all([
          replica(uniqueName('le-a')),
          replica(uniqueName('le-b')),
        ]);
        ops.push(a as OperatorProcess, b as OperatorProcess);
        const electedAt = await waitFor(
          'exactly one leader',
          async () => Promise.all(ops.map(leading)),
          (v) => v.filter((x) => x === 1).length === 1 && v.filter((x) => x === 0).length === 1,
          { timeoutMs: 30_000 },
        );
        let leader = ops[electedAt.indexOf(1)] as OperatorProcess;
        let standby = ops[electedAt.indexOf(0)] as OperatorProcess;
        assert.equal((await lease())?.spec?.holderIdentity, leader.options.identity);

        // Only the leader writes.
        const tenant = uniqueName('tenant');
        const initial = await Promise.all([1, 2, 3].map(() => f.namespace('le', { tenant })));
        const name = uniqueName('rc');
        await writes.start(`regcred.dev/credential=${name}`);
        credential = name;
        await basicCredential({ namespaceSelector: { matchLabels: { tenant } } }, name);
        const synced = (n: number) =>
          waitFor(
            `${name} Ready with ${n} namespaces synced`,
            () => f.getCredential(name),
            (c) =>
              c.status?.syncedNamespaces === n &&
              c.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
              c.status.observedGeneration === c.metadata.generation,
            { timeoutMs: 90_000 },
          );
        await synced(3);
        for (const ns of initial) await f.waitPullSecrets(ns, 'default', (n) => n.includes(name));
        const leaderWrites = await settledWrites([leader]);
        const standbyWrites = await writeTotals([standby]);
        assert.ok(leaderWrites.secretsCreate >= 3, 'the leader wrote the Secrets');
        assert.equal(standbyWrites.all, 0, 'the standby wrote nothing');
        assert.equal(
          (await standby.metric('controller_runtime_reconcile_total')) ?? 0,
          0,
          'the standby reconciled nothing',
        );

        // One change, both replicas up: written exactly once in total.
        const before = await settledWrites(ops);
        const fourth = await f.namespace('le', { tenant });
        await synced(4);
        await f.waitPullSecrets(fourth, 'default', (n) => n.includes(name));
        const change = delta(await settledWrites(ops), before);
        process.stdout.write(
          `      writes for one new namespace, both replicas: ${JSON.stringify(change)}\n`,
        );
        assert.equal(change.secretsCreate, 1, 'one Secret create in total');
        assert.equal(change.serviceAccountsUpdate, 1, 'one ServiceAccount update in total');
        assert.equal(change.secretsUpdate + change.secretsDelete, 0);

        // kill -9 the leader: the standby takes over once the lease expires.
        const killedAt = Date.now();
        await leader.kill();
        const afterKill = await f.namespace('le', { tenant });
        await waitUntil('the standby to lead', async () => (await leading(standby)) === 1, {
          timeoutMs: 40_000,
          intervalMs: 50,
        });
        const crashTakeover = Date.now() - killedAt;
        assert.equal((await lease())?.spec?.holderIdentity, standby.options.identity);
        await synced(5);
        await f.waitPullSecrets(afterKill, 'default', (n) => n.includes(name));
        const crashSynced = Date.now() - killedAt;
        process.stdout.write(
          `      after kill -9: standby leads in ${crashTakeover} ms; the change made after the kill synced in ${crashSynced} ms\n`,
        );
        assert.ok(crashTakeover <= 20_000, `takeover after a crash took ${crashTakeover} ms`);
        leader = standby;

        // A new standby; SIGTERM the leader: the handover is immediate.
        standby = await replica(uniqueName('le-c'));
        ops.push(standby);
        assert.equal(await leading(standby), 0);
        const atHandover = await f.namespace('le', { tenant });
        const termAt = Date.now();
        const stopping = leader.stop().then((code) => ({ code, exited: Date.now() - termAt }));
        await waitUntil('the new standby to lead', async () => (await leading(standby)) === 1, {
          timeoutMs: 30_000,
          intervalMs: 50,
        });
        const handover = Date.now() - termAt;
        const { code, exited } = await stopping;
        assert.equal(code, 0, 'a SIGTERM exits 0');
        assert.equal((await lease())?.spec?.holderIdentity, standby.options.identity);
        await synced(6);
        await f.waitPullSecrets(atHandover, 'default', (n) => n.includes(name));
        process.stdout.write(
          `      after SIGTERM: the old leader exited in ${exited} ms, the standby leads in ${handover} ms\n`,
        );
        assert.ok(handover <= 5_000, `handover after SIGTERM took ${handover} ms`);

        // What the API server saw: every Secret created once and never rewritten, every
        // ServiceAccount changed once, through a crash and a handover.
        await settledWrites([standby]);
        assert.deepEqual(writes.errors, []);
        for (const ns of [...initial, fourth, afterKill, atHandover]) {
          assert.deepEqual(
            writes.of('secrets', ns, name),
            { added: 1, modified: 0 },
            `Secret in ${ns}`,
          );
          assert.equal(
            writes.of('serviceaccounts', ns, 'default').modified,
            1,
            `default SA in ${ns}`,
          );
          assert.deepEqual(await f.pullSecretNames(ns), [name]);
        }

        await deleteCredentialQuietly(name);
        credential = undefined;
        assert.equal(await standby.stop(), 0);
        assert.equal((await lease())?.spec?.holderIdentity ?? '', '', 'the lease was released');
      } finally {
        writes.stop();
        for (const op of ops) await op.stop();
        await cluster.startOperator();
        if (credential) await deleteCredentialQuietly(credential, false);
      }
    });

    for (const [mode, what] of [
      ['silent', 'network goes silent'],
      ['swallow', 'requests go unanswered'],
    ] as const) {
      it(`a leader whose ${what} stops leading before a standby can take over`, async function (this: Mocha.Context) {
        this.timeout(240_000);
        // The leader reaches the API server through a proxy the test can break: its requests then
        // neither succeed nor fail, as in a network partition.
        const proxy = await BlackHoleProxy.start(cluster.controlPlane.apiPort);
        const config = readFileSync(cluster.operatorKubeconfigPath, 'utf8');
        const server = cluster.controlPlane.server;
        assert.ok(config.includes(server));
        const proxiedConfig = join(cluster.controlPlane.dir, 'operator-via-proxy.kubeconfig');
        writeFileSync(proxiedConfig, config.replace(server, `https://127.0.0.1:${proxy.port}`), {
          mode: 0o600,
        });
        const ops: OperatorProcess[] = [];
        await cluster.stopOperator();
        try {
          const cutOff = await replica(uniqueName('le-partitioned'), proxiedConfig);
          ops.push(cutOff);
          await waitUntil(
            'the proxied replica to lead',
            async () => (await leading(cutOff)) === 1,
            {
              timeoutMs: 30_000,
            },
          );
          const standby = await replica(uniqueName('le-standby'));
          ops.push(standby);
          assert.equal(await leading(standby), 0);

          proxy.mode = mode;
          const cutAt = Date.now();
          // "Stopped leading" is when the cut-off replica can no longer write: its workers have
          // returned (every request they had in flight aborted at the renew deadline) and it
          // logged "stopped". leader_election_master_status flips before that drain ends, so it
          // only tells when the replica gave up, not that it stopped writing.
          const drained = () => cutOff.logs.some((line) => /"message":"stopped"/.test(line));
          let gaveUp: number | undefined;
          let stoppedLeading: number | undefined;
          let tookOver: number | undefined;
          await waitUntil(
            'the standby to take over',
            async () => {
              if (gaveUp === undefined && (await leading(cutOff).catch(() => 0)) !== 1) {
                gaveUp = Date.now() - cutAt;
              }
              if (stoppedLeading === undefined && drained()) stoppedLeading = Date.now() - cutAt;
              if (tookOver === undefined && (await leading(standby)) === 1) {
                tookOver = Date.now() - cutAt;
              }
              return tookOver !== undefined;
            },
            { timeoutMs: 60_000, intervalMs: 50 },
          );
          // Let a late drain show in the numbers rather than as a timeout.
          await waitUntil('the cut-off replica to finish its drain', async () => drained(), {
            timeoutMs: 40_000,
            intervalMs: 50,
          }).catch(() => false);
          stoppedLeading ??= Date.now() - cutAt;
          gaveUp ??= stoppedLeading;
          process.stdout.write(
            `      ${mode}: the cut-off leader gave up after ${gaveUp} ms and finished its drain after ${stoppedLeading} ms; the standby led after ${tookOver} ms\n`,
          );
          assert.ok(
            stoppedLeading < (tookOver ?? 0),
            `the cut-off leader stopped writing (${stoppedLeading} ms) before the standby took over (${tookOver} ms)`,
          );
          assert.ok(gaveUp <= 12_000, 'it gives up at the renew deadline (10 s)');
          assert.ok(
            stoppedLeading <= 12_000,
            'its drain ends at the renew deadline (10 s): requests in flight are aborted there',
          );
          const exited = await waitFor(
            'the cut-off replica to exit',
            () => cutOff.exitCode,
            (c) => c !== null,
            {
              timeoutMs: 60_000,
              intervalMs: 100,
            },
          );
          assert.equal(exited, 1, 'losing leadership exits 1 so the Deployment restarts it');
          assert.equal((await lease())?.spec?.holderIdentity, standby.options.identity);
        } finally {
          for (const op of ops) await op.stop();
          await proxy.close();
          await cluster.startOperator();
        }
      });
    }
  });

  describe('graceful shutdown', () => {
    it('SIGTERM during a large fan-out exits 0 within the cap, and the next start finishes the job', async function (this: Mocha.Context) {
      this.timeout(600_000);
      const COUNT = 300;
      const tenant = uniqueName('tenant');
      const namespaces = await inBatches(
        Array.from({ length: COUNT }, (_, i) => i),
        20,
        () => f.namespace('bulk', { tenant }),
      );
      const wanted = new Set(namespaces);
      const core = cluster.kc.makeApiClient(CoreV1Api);
      const defaults = async () =>
        (
          await core.listServiceAccountForAllNamespaces({ fieldSelector: 'metadata.name=default' })
        ).items.filter((sa) => wanted.has(sa.metadata?.namespace ?? ''));
      await waitUntil(
        'every default ServiceAccount',
        async () => (await defaults()).length === COUNT,
        {
          timeoutMs: 180_000,
          intervalMs: 1_000,
        },
      );

      let name: string | undefined;
      try {
        let op = cluster.operator;
        const baseline = (await op.metric('regcred_api_writes_total')) ?? 0;
        name = (await basicCredential({ namespaceSelector: { matchLabels: { tenant } } })).name;
        const running = op;
        const inFlight = await waitFor(
          'the fan-out to be under way',
          async () => ((await running.metric('regcred_api_writes_total')) ?? 0) - baseline,
          (n) => n > 20,
          { timeoutMs: 60_000, intervalMs: 10 },
        );
        const termAt = Date.now();
        const code = await op.stop();
        const exitMs = Date.now() - termAt;
        process.stdout.write(
          `      SIGTERM after ${inFlight} writes; exit ${code} in ${exitMs} ms\n`,
        );
        assert.equal(code, 0, 'exit code');
        assert.ok(exitMs <= 35_000, `exited in ${exitMs} ms`);
        const credName = name;
        const cut = await f.getCredential(name);
        const secretsAtExit = (
          await core.listSecretForAllNamespaces({
            labelSelector: `regcred.dev/credential=${credName}`,
          })
        ).items.length;
        const entriesAtExit = (await defaults()).filter((sa) =>
          (sa.imagePullSecrets ?? []).some((e) => e.name === credName),
        ).length;
        process.stdout.write(
          `      at exit: status synced ${cut.status?.syncedNamespaces ?? 0}/${cut.status?.targetNamespaces ?? 0}, ${secretsAtExit} Secrets, ${entriesAtExit} ServiceAccount entries\n`,
        );

        op = await cluster.startOperator();
        const done = await waitFor(
          `${credName} Ready with ${COUNT} namespaces synced`,
          () => f.getCredential(credName),
          (c) =>
            c.status?.syncedNamespaces === COUNT &&
            c.status.targetNamespaces === COUNT &&
            c.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True',
          { timeoutMs: 300_000, intervalMs: 1_000 },
        );
        assert.equal(done.status?.failedNamespaces, undefined);
        const secrets = await core.listSecretForAllNamespaces({
          labelSelector: `regcred.dev/credential=${credName}`,
        });
        const withSecret = secrets.items.map((s) => s.metadata?.namespace ?? '');
        assert.equal(withSecret.length, COUNT, 'one Secret per namespace');
        assert.deepEqual(new Set(withSecret), wanted);
        const duplicated: string[] = [];
        const missing: string[] = [];
        for (const sa of await defaults()) {
          const names = (sa.imagePullSecrets ?? []).map((e) => e.name);
          if (new Set(names).size !== names.length) duplicated.push(sa.metadata?.namespace ?? '');
          if (!names.includes(credName)) missing.push(sa.metadata?.namespace ?? '');
        }
        assert.deepEqual(duplicated, [], 'no duplicate imagePullSecrets entries');
        assert.deepEqual(missing, [], 'every default ServiceAccount lists the Secret');
        // The restart wrote exactly what was left: nothing twice.
        const restart = await settledWrites([op]);
        assert.equal(restart.secretsCreate, COUNT - secretsAtExit, 'Secrets created after restart');
        assert.equal(
          restart.serviceAccountsUpdate,
          COUNT - entriesAtExit,
          'ServiceAccounts updated after restart',
        );
        assert.equal(restart.secretsUpdate, 0);
      } finally {
        if (name) await deleteCredentialQuietly(name);
        await inBatches(namespaces, 20, (ns) => f.core.deleteNamespace({ name: ns }));
      }
    });
  });
});

// The benchmark's cluster: a fresh local control plane (test/support/controlplane.ts) with the
// CRD, the operator's namespace and config/rbac, and admin-side helpers to make namespaces,
// source Secrets and RegistryCredentials in bulk.
import { join } from 'node:path';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1OwnerReference,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import PQueue from 'p-queue';
import {
  API_VERSION,
  CREDENTIAL_LABEL,
  GROUP,
  KIND,
  PLURAL,
  type RegistryCredential,
  type RegistryCredentialSpec,
  SOURCE_LABEL,
  SOURCE_LABEL_VALUE,
  VERSION,
} from '../src/api/types.ts';
import { KubeApi } from '../src/kube/api.ts';
import { shareConnections as reuseConnections } from '../src/kube/connections.ts';
import { type ControlPlane, startControlPlane } from '../test/support/controlplane.ts';
import { apiServerRequests, MUTATING_VERBS, type RequestCounts } from './metrics.ts';
import { sampleProcess } from './process-stats.ts';
import { ResumingWatch, type WatchHandler, type WatchQuery } from './watch.ts';

const repoRoot = join(import.meta.dirname, '..');

export const OPERATOR_NAMESPACE = 'regcred-system';
/** Namespaces of one scenario run carry this label with the run's id. */
export const RUN_LABEL = 'bench.regcred.dev/run';
export const REGISTRY_SERVER = 'registry.bench.example:5000';
export const SOURCE_USERNAME = 'bench-robot';
/** Namespaces created at once by the harness. */
export const CREATE_CONCURRENCY = 32;

export type Log = (line: string) => void;

/** The HTTP status an error carries (client-node's ApiException, KubeApiError, withRetry's). */
export function httpCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Retries throttling, server errors and dropped connections a few times. */
export async function withRetry<T>(what: string, run: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      const code = httpCode(error);
      const transient = code === undefined || code === 0 || code === 429 || code >= 500;
      if (!transient || attempt >= attempts) {
        const message = error instanceof Error ? error.message : String(error);
        throw Object.assign(new Error(`${what}: ${message}`), { code });
      }
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }
}

function dockerConfigJson(password: string): string {
  const auth = Buffer.from(`${SOURCE_USERNAME}:${password}`).toString('base64');
  return JSON.stringify({
    auths: { [REGISTRY_SERVER]: { username: SOURCE_USERNAME, password, auth } },
  });
}

/**
 * The Secret the floor writes: the operator's shape (type, data, two labels, a controller
 * ownerReference to a RegistryCredential) under the floor's own label and name, so the API
 * server, its field manager and the garbage collector do the same work for both. The operator
 * never sees it: it only watches Secrets labelled managed-by regcred-operator.
 */
export function floorSecret(
  namespace: string,
  name: string,
  password: string,
  owner: V1OwnerReference,
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace,
      labels: { 'bench.regcred.dev/floor': 'true', [CREDENTIAL_LABEL]: owner.name },
      ownerReferences: [owner],
    },
    type: 'kubernetes.io/dockerconfigjson',
    data: {
      '.dockerconfigjson': Buffer.from(dockerConfigJson(password)).toString('base64'),
    },
  };
}

/** True when a dockerconfigjson Secret holds `password` for the benchmark's registry. */
export function holdsPassword(secret: V1Secret, password: string): boolean {
  const data = secret.data?.['.dockerconfigjson'];
  if (!data) return false;
  try {
    const config = JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as {
      auths?: Record<string, { password?: string }>;
    };
    return config.auths?.[REGISTRY_SERVER]?.password === password;
  } catch {
    return false;
  }
}

export function hasPullSecret(sa: V1ServiceAccount, name: string): boolean {
  return (sa.imagePullSecrets ?? []).some((entry) => entry.name === name);
}

/**
 * Starts kube-controller-manager on a plane started without it. ControlPlane has no public
 * method for that; this reaches its private startComponent and fails loudly if it changes.
 */
async function startControllerManager(plane: ControlPlane, apiQps?: number): Promise<void> {
  const start = (plane as unknown as { startComponent?: (name: string) => Promise<void> })
    .startComponent;
  if (apiQps !== undefined) {
    // --scale: kube-controller-manager makes a ServiceAccount and a ConfigMap for every new
    // namespace; at its default 200 requests/s, 10,000 namespaces wait on it for 100 s.
    const components = (plane as unknown as { components?: Map<string, { args: string[] }> })
      .components;
    const manager = components?.get('kube-controller-manager');
    if (!manager) {
      throw new Error(
        "ControlPlane.components is gone: bench/cluster.ts needs another way to raise kube-controller-manager's QPS",
      );
    }
    manager.args = [
      ...manager.args.filter((a) => !/^--kube-api-(qps|burst)=/.test(a)),
      `--kube-api-qps=${apiQps}`,
      `--kube-api-burst=${apiQps * 2}`,
    ];
  }
  if (typeof start !== 'function') {
    throw new Error(
      'ControlPlane.startComponent is gone: bench/cluster.ts needs another way to start kube-controller-manager after the CRD',
    );
  }
  await start.call(plane, 'kube-controller-manager');
}

export class BenchCluster {
  readonly plane: ControlPlane;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly operatorKubeconfigPath: string;
  /**
   * The floor's client: the operator's identity (config/rbac's ServiceAccount token), so its
   * requests pay the same authentication and RBAC checks as the operator's; the harness's own
   * client is a cluster admin, which the API server lets through without either.
   */
  readonly floorCore: CoreV1Api;
  /** The floor's writes go through the operator's own client (src/kube/api.ts), as its do. */
  readonly floorApi: KubeApi;
  /** What the floor's Secrets are owned by (a suspended RegistryCredential of its own). */
  floorOwner: V1OwnerReference = { apiVersion: API_VERSION, kind: KIND, name: '', uid: '' };

  private constructor(plane: ControlPlane, operatorKubeconfigPath: string) {
    this.plane = plane;
    this.kc = new KubeConfig();
    this.kc.loadFromFile(plane.kubeconfigPath);
    // A plain client keeps its connections alive (see connections.ts).
    reuseConnections(this.kc);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.operatorKubeconfigPath = operatorKubeconfigPath;
    const floorKc = new KubeConfig();
    floorKc.loadFromFile(operatorKubeconfigPath);
    this.floorCore = reuseConnections(floorKc).makeApiClient(CoreV1Api);
    this.floorApi = new KubeApi(floorKc);
  }

  /** A suspended RegistryCredential that selects nothing: the owner of the floor's Secrets. */
  private async createFloorOwner(): Promise<void> {
    const name = 'bench-floor-owner';
    const created = await this.createRegistryCredential(name, {
      suspend: true,
      namespaces: ['bench-floor-owner-selects-nothing'],
      registries: [{ server: REGISTRY_SERVER, basic: { secretRef: { name } } }],
    });
    this.floorOwner = {
      apiVersion: API_VERSION,
      kind: KIND,
      name,
      uid: created.metadata.uid ?? '',
      controller: true,
      blockOwnerDeletion: false,
    };
  }

  /**
   * A fresh control plane with the CRD, the operator namespace, config/rbac and its token.
   * kube-controller-manager starts after the CRD exists: its garbage collector only learns
   * of resources added later on its next discovery pass (~30-40 s), and until then every
   * Secret the operator writes (owned by a RegistryCredential) makes it issue GETs, which
   * would be counted against the operator. A probe confirms the collector handles the CRD.
   */
  static async start(
    log: Log,
    apiServerFlags: string[] = [],
    options: { controllerManagerQps?: number } = {},
  ): Promise<BenchCluster> {
    const plane = await startControlPlane({
      log: (line) => log(line),
      apiServerFlags,
      controllerManager: false,
    });
    try {
      const kubectl = async (...args: string[]): Promise<string> => {
        const result = await plane.kubectl(args);
        if (result.code !== 0) {
          throw new Error(`kubectl ${args.join(' ')}: ${result.stderr || result.stdout}`);
        }
        return result.stdout;
      };
      await kubectl('apply', '--server-side', '-f', join(repoRoot, 'crds'));
      await kubectl(
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        `crd/${PLURAL}.${GROUP}`,
      );
      await startControllerManager(plane, options.controllerManagerQps);
      await kubectl('create', 'namespace', OPERATOR_NAMESPACE);
      // As in production: the operator runs as config/rbac's ServiceAccount, not as admin.
      await kubectl('apply', '-k', join(repoRoot, 'config', 'rbac'));
      const token = (
        await kubectl(
          'create',
          'token',
          'regcred-operator',
          '-n',
          OPERATOR_NAMESPACE,
          '--duration=24h',
        )
      ).trim();
      const path = plane.writeKubeconfigFor(
        join(plane.dir, 'operator.kubeconfig'),
        'regcred-operator',
        token,
      );
      const cluster = new BenchCluster(plane, path);
      await cluster.createFloorOwner();
      const gcMs = await cluster.waitGarbageCollectorKnowsCredentials();
      log(`[bench] garbage collector handles RegistryCredential owners (${gcMs.toFixed(0)} ms)`);
      return cluster;
    } catch (error) {
      await plane.stop();
      throw error;
    }
  }

  /**
   * Creates a ConfigMap owned by a RegistryCredential that does not exist and waits for the
   * garbage collector to delete it: proof it resolves RegistryCredential owners.
   */
  async waitGarbageCollectorKnowsCredentials(timeoutMs = 120_000): Promise<number> {
    const started = performance.now();
    const name = 'bench-gc-probe';
    await this.core.createNamespacedConfigMap({
      namespace: 'default',
      body: {
        metadata: {
          name,
          ownerReferences: [
            {
              apiVersion: API_VERSION,
              kind: KIND,
              name,
              uid: '00000000-0000-0000-0000-00000000b0b0',
            },
          ],
        },
      },
    });
    while (performance.now() - started < timeoutMs) {
      try {
        await this.core.readNamespacedConfigMap({ namespace: 'default', name });
      } catch (error) {
        if (httpCode(error) === 404) return performance.now() - started;
        throw error;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(
      `the garbage collector did not handle RegistryCredential owners in ${timeoutMs} ms`,
    );
  }

  stop(): Promise<void> {
    return this.plane.stop();
  }

  /** CPU seconds etcd, kube-apiserver and kube-controller-manager have used so far, each. */
  cpuByComponent(): Record<string, number> {
    const cpu: Record<string, number> = {};
    for (const { name, pid } of this.plane.processes()) {
      try {
        cpu[name] = sampleProcess(pid).cpuSeconds;
      } catch {
        // exited
      }
    }
    return cpu;
  }

  /** What the control plane spent since `start` (a cpuByComponent()): in all, and per component. */
  cpuSince(start: Record<string, number>): { seconds: number; detail: string } {
    const spent = Object.entries(this.cpuByComponent()).map(
      ([name, s]) => [name, s - (start[name] ?? 0)] as const,
    );
    return {
      seconds: spent.reduce((sum, [, s]) => sum + s, 0),
      detail: spent.map(([name, s]) => `${name} ${s.toFixed(2)}`).join(', '),
    };
  }

  /** apiserver_request_total by verb and resource, now. */
  async apiRequests(): Promise<RequestCounts> {
    return apiServerRequests(await this.plane.get('/metrics'));
  }

  /**
   * Creates the namespaces (CREATE_CONCURRENCY in flight) and waits until kube-controller-manager
   * has made every default ServiceAccount. Returns how long each half took.
   */
  async createNamespacesAndWait(
    names: readonly string[],
    labels: Record<string, string> | ((name: string) => Record<string, string>),
  ): Promise<{ createMs: number; serviceAccountsMs: number }> {
    const pending = new Set(names);
    let resolveAll: () => void = () => {};
    const allSeen = new Promise<void>((r) => {
      resolveAll = r;
    });
    const watch = await this.watchServiceAccounts(
      { fieldSelector: 'metadata.name=default' },
      (type, sa) => {
        if (type === 'DELETED') return;
        pending.delete(sa.metadata?.namespace ?? '');
        if (pending.size === 0) resolveAll();
      },
    ).start();
    try {
      const createMs = await this.createNamespaces(names, labels);
      const created = performance.now();
      if (pending.size > 0) {
        const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 180_000));
        if ((await Promise.race([allSeen, timeout])) === 'timeout') {
          // Fall back to a LIST in case the watch missed something.
          const list = await this.core.listServiceAccountForAllNamespaces({
            fieldSelector: 'metadata.name=default',
          });
          for (const sa of list.items) pending.delete(sa.metadata?.namespace ?? '');
          if (pending.size > 0) {
            throw new Error(`${pending.size} namespaces still have no default ServiceAccount`);
          }
        }
      }
      return { createMs, serviceAccountsMs: performance.now() - created };
    } finally {
      watch.stop();
    }
  }

  /** Creates the namespaces, CREATE_CONCURRENCY in flight; returns the milliseconds it took. */
  async createNamespaces(
    names: readonly string[],
    labels: Record<string, string> | ((name: string) => Record<string, string>),
  ): Promise<number> {
    const started = performance.now();
    await this.forEachConcurrently(names, CREATE_CONCURRENCY, (name) =>
      this.createNamespace(name, typeof labels === 'function' ? labels(name) : labels),
    );
    return performance.now() - started;
  }

  async createNamespace(name: string, labels: Record<string, string>): Promise<void> {
    await withRetry(`create namespace ${name}`, async () => {
      try {
        await this.core.createNamespace({ body: { metadata: { name, labels } } });
      } catch (error) {
        if (httpCode(error) === 409) return;
        throw error;
      }
    });
  }

  async forEachConcurrently<T>(
    items: readonly T[],
    concurrency: number,
    run: (item: T) => Promise<void>,
  ): Promise<void> {
    const queue = new PQueue({ concurrency });
    let failure: unknown;
    for (const item of items) {
      void queue.add(async () => {
        if (failure !== undefined) return;
        try {
          await run(item);
        } catch (error) {
          failure ??= error;
        }
      });
    }
    await queue.onIdle();
    if (failure !== undefined) throw failure;
  }

  /** `count` Opaque Secrets of `bytes` random bytes each, spread over `namespaces`. */
  async createUnrelatedSecrets(
    namespaces: readonly string[],
    count: number,
    bytes: number,
  ): Promise<void> {
    const items = Array.from({ length: count }, (_, i) => ({
      namespace: namespaces[i % namespaces.length] ?? 'default',
      name: `unrelated-${i}`,
    }));
    await this.forEachConcurrently(items, CREATE_CONCURRENCY, ({ namespace, name }) =>
      withRetry(`create Secret ${namespace}/${name}`, async () => {
        try {
          await this.core.createNamespacedSecret({
            namespace,
            body: {
              metadata: { name },
              type: 'Opaque',
              data: { blob: Buffer.alloc(bytes, name).toString('base64') },
            },
          });
        } catch (error) {
          if (httpCode(error) === 409) return;
          throw error;
        }
      }),
    );
  }

  /** `count` ConfigMaps of `bytes` bytes each, spread over `namespaces`. */
  async createUnrelatedConfigMaps(
    namespaces: readonly string[],
    count: number,
    bytes: number,
  ): Promise<void> {
    const items = Array.from({ length: count }, (_, i) => ({
      namespace: namespaces[i % namespaces.length] ?? 'default',
      name: `unrelated-cm-${i}`,
    }));
    await this.forEachConcurrently(items, CREATE_CONCURRENCY, ({ namespace, name }) =>
      withRetry(`create ConfigMap ${namespace}/${name}`, async () => {
        try {
          await this.core.createNamespacedConfigMap({
            namespace,
            body: { metadata: { name }, data: { blob: 'x'.repeat(bytes) } },
          });
        } catch (error) {
          if (httpCode(error) === 409) return;
          throw error;
        }
      }),
    );
  }

  /** ServiceAccounts `names` in every one of `namespaces` (besides kube-controller-manager's default). */
  async createServiceAccounts(
    namespaces: readonly string[],
    names: readonly string[],
  ): Promise<void> {
    const items = namespaces.flatMap((namespace) => names.map((name) => ({ namespace, name })));
    await this.forEachConcurrently(items, CREATE_CONCURRENCY, ({ namespace, name }) =>
      withRetry(`create ServiceAccount ${namespace}/${name}`, async () => {
        try {
          await this.core.createNamespacedServiceAccount({
            namespace,
            body: { metadata: { name } },
          });
        } catch (error) {
          if (httpCode(error) === 409) return;
          throw error;
        }
      }),
    );
  }

  /** A RegistryCredential with the given spec (the harness's admin client). */
  createCredentialWithSpec(
    name: string,
    spec: RegistryCredentialSpec,
  ): Promise<RegistryCredential> {
    return this.createRegistryCredential(name, spec);
  }

  async createSourceSecret(name: string, password: string): Promise<void> {
    await this.core.createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name, labels: { [SOURCE_LABEL]: SOURCE_LABEL_VALUE } },
        type: 'Opaque',
        stringData: { username: SOURCE_USERNAME, password },
      },
    });
  }

  async setSourcePassword(name: string, password: string): Promise<void> {
    await this.core.patchNamespacedSecret(
      { namespace: OPERATOR_NAMESPACE, name, body: { stringData: { password } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** A RegistryCredential selecting the namespaces labelled with `runId`. */
  async createCredential(
    name: string,
    runId: string,
    secretName: string,
    source: string,
  ): Promise<RegistryCredential> {
    return this.createRegistryCredential(name, {
      secretName,
      namespaceSelector: { matchLabels: { [RUN_LABEL]: runId } },
      registries: [{ server: REGISTRY_SERVER, basic: { secretRef: { name: source } } }],
    });
  }

  private async createRegistryCredential(
    name: string,
    spec: RegistryCredentialSpec,
  ): Promise<RegistryCredential> {
    return (await this.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      body: { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec },
    })) as RegistryCredential;
  }

  /**
   * Waits until no client has written anything (leases and events aside) for `quietMs`: the
   * controller-manager's reaction to new namespaces (ConfigMaps, tokens) must not overlap a
   * measurement. Returns false on timeout.
   */
  async waitQuiet(quietMs = 1500, timeoutMs = 120_000): Promise<boolean> {
    const writes = async (): Promise<number> => {
      const counts = await this.apiRequests();
      let sum = 0;
      for (const [key, value] of Object.entries(counts)) {
        const [verb = '', resource = ''] = key.split(' ');
        if (resource.startsWith('leases') || resource.startsWith('events')) continue;
        if (MUTATING_VERBS.includes(verb)) sum += value;
      }
      return sum;
    };
    const deadline = performance.now() + timeoutMs;
    let last = await writes();
    let quietSince = performance.now();
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await writes();
      if (now !== last) {
        last = now;
        quietSince = performance.now();
      } else if (performance.now() - quietSince >= quietMs) {
        return true;
      }
    }
    return false;
  }

  // ---- watches that start now (from the collection's current resourceVersion) ----

  watchServiceAccounts(
    query: WatchQuery,
    onEvent: WatchHandler<V1ServiceAccount>,
  ): ResumingWatch<V1ServiceAccount> {
    return new ResumingWatch(
      this.kc,
      '/api/v1/serviceaccounts',
      query,
      async () =>
        (await this.core.listServiceAccountForAllNamespaces({ ...query, limit: 1 })).metadata
          ?.resourceVersion ?? '',
      onEvent,
    );
  }

  watchSecrets(query: WatchQuery, onEvent: WatchHandler<V1Secret>): ResumingWatch<V1Secret> {
    return new ResumingWatch(
      this.kc,
      '/api/v1/secrets',
      query,
      async () =>
        (await this.core.listSecretForAllNamespaces({ ...query, limit: 1 })).metadata
          ?.resourceVersion ?? '',
      onEvent,
    );
  }

  watchNamespaces(
    query: WatchQuery,
    onEvent: WatchHandler<{ metadata?: { name?: string } }>,
  ): ResumingWatch<{ metadata?: { name?: string } }> {
    return new ResumingWatch(
      this.kc,
      '/api/v1/namespaces',
      query,
      async () =>
        (await this.core.listNamespace({ ...query, limit: 1 })).metadata?.resourceVersion ?? '',
      onEvent,
    );
  }

  watchCredential(
    name: string,
    onEvent: WatchHandler<RegistryCredential>,
  ): ResumingWatch<RegistryCredential> {
    const query = { fieldSelector: `metadata.name=${name}` };
    return new ResumingWatch(
      this.kc,
      `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      query,
      async () => {
        const list = (await this.custom.listClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          ...query,
          limit: 1,
        })) as { metadata?: { resourceVersion?: string } };
        return list.metadata?.resourceVersion ?? '';
      },
      onEvent,
    );
  }
}

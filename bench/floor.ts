// The floor baseline: a plain client doing exactly the minimal writes, with the operator's
// fan-out concurrency and none of its logic (no caches, no diffing, no status). What the
// operator costs on top of the API server's own speed is its figure divided by this one.
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import PQueue from 'p-queue';
import { type BenchCluster, floorSecret, hasPullSecret, httpCode, withRetry } from './cluster.ts';
import { countsDelta, type RequestCounts } from './metrics.ts';
import { sampleProcess } from './process-stats.ts';

export const FLOOR_SECRET = 'floor-pull';
export const FLOOR_LABEL_SELECTOR = 'bench.regcred.dev/floor=true';

export interface FloorResult {
  /** performance.now() when the first write was sent. */
  startedAt: number;
  wallMs: number;
  /** CPU seconds of etcd + kube-apiserver + kube-controller-manager during the run. */
  clusterCpuSeconds: number;
  /** The same per component, for the progress log. */
  clusterCpuDetail: string;
  /** To the last write as a watch saw it land (when watched). */
  observedMs?: number;
  /** CPU seconds the floor client (this process) spent (its watches included, when watched). */
  cpuSeconds: number;
  /** ... of which on the JavaScript thread. */
  mainThreadCpuSeconds: number;
  requests: RequestCounts;
}

/**
 * Runs `writes` once the cluster is quiet and measures it as every floor is measured: wall
 * time to the last response, this process's CPU (and its JavaScript thread's), the control
 * plane's CPU, and the API requests made.
 */
async function measured(cluster: BenchCluster, writes: () => Promise<void>): Promise<FloorResult> {
  await cluster.waitQuiet();
  const before = await cluster.apiRequests();
  const cpu = process.cpuUsage();
  const mainThread = sampleProcess(process.pid).mainThreadCpuSeconds;
  const clusterCpu = cluster.cpuByComponent();
  const started = performance.now();
  await writes();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const mainThreadCpuSeconds = sampleProcess(process.pid).mainThreadCpuSeconds - mainThread;
  const spent = cluster.cpuSince(clusterCpu);
  return {
    startedAt: started,
    wallMs,
    cpuSeconds: (used.user + used.system) / 1e6,
    mainThreadCpuSeconds,
    clusterCpuSeconds: spent.seconds,
    clusterCpuDetail: spent.detail,
    requests: countsDelta(await cluster.apiRequests(), before),
  };
}

/** The faster of two floor runs (one before the operator ran, one after). */
export function fastest(runs: readonly FloorResult[]): FloorResult {
  const [first, ...rest] = runs;
  if (!first) throw new Error('no floor run');
  return rest.reduce((best, run) => (run.wallMs < best.wallMs ? run : best), first);
}

function withEntries(sa: V1ServiceAccount, names: readonly string[]): V1ServiceAccount {
  return {
    ...sa,
    imagePullSecrets: [...(sa.imagePullSecrets ?? []), ...names.map((name) => ({ name }))],
  };
}

/** One PUT with the missing entries appended; on a conflict, read again and retry. */
async function addEntries(
  cluster: BenchCluster,
  sa: V1ServiceAccount,
  names: readonly string[],
): Promise<void> {
  let current = sa;
  for (let attempt = 0; attempt < 5; attempt++) {
    const missing = names.filter((name) => !hasPullSecret(current, name));
    if (missing.length === 0) return;
    const namespace = current.metadata?.namespace ?? '';
    const saName = current.metadata?.name ?? '';
    try {
      await withRetry(`update ServiceAccount ${namespace}/${saName}`, () =>
        cluster.floorApi.replaceServiceAccount(withEntries(current, missing)),
      );
      return;
    } catch (error) {
      if (httpCode(error) !== 409) throw error;
      const read = await cluster.floorApi.readServiceAccount(namespace, saName);
      if (!read) throw new Error(`ServiceAccount ${namespace}/${saName} is gone`);
      current = read;
    }
  }
  throw new Error(`ServiceAccount ${sa.metadata?.namespace}/${sa.metadata?.name} kept changing`);
}

/**
 * Fan-out floor: per namespace, create the Secret, then PUT the default ServiceAccount (read
 * from one LIST made before the clock starts) with the entry appended; `concurrency`
 * namespaces in flight. Timed from the first write to the last response.
 */
export async function floorFanout(
  cluster: BenchCluster,
  namespaces: readonly string[],
  secretName: string,
  password: string,
  concurrency: number,
  serviceAccountNames: readonly string[] = ['default'],
): Promise<FloorResult> {
  const accounts = await serviceAccountsOf(cluster, namespaces, serviceAccountNames);
  return measured(cluster, () =>
    cluster.forEachConcurrently(namespaces, concurrency, async (namespace) => {
      await withRetry(`create Secret ${namespace}/${secretName}`, () =>
        cluster.floorApi.createSecret(
          floorSecret(namespace, secretName, password, cluster.floorOwner),
        ),
      );
      for (const name of serviceAccountNames) {
        const sa = accounts.get(`${namespace}/${name}`);
        if (!sa) throw new Error(`no ServiceAccount ${namespace}/${name}`);
        await addEntries(cluster, sa, [secretName]);
      }
    }),
  );
}

/** The ServiceAccounts `names` of `namespaces`, from one LIST, by `namespace/name`. */
async function serviceAccountsOf(
  cluster: BenchCluster,
  namespaces: readonly string[],
  names: readonly string[],
): Promise<Map<string, V1ServiceAccount>> {
  const wanted = new Set(namespaces);
  const wantedNames = new Set(names);
  const accounts = new Map<string, V1ServiceAccount>();
  const list = await cluster.floorCore.listServiceAccountForAllNamespaces(
    names.length === 1 ? { fieldSelector: `metadata.name=${names[0]}` } : {},
  );
  for (const sa of list.items) {
    const ns = sa.metadata?.namespace ?? '';
    const name = sa.metadata?.name ?? '';
    if (wanted.has(ns) && wantedNames.has(name)) accounts.set(`${ns}/${name}`, sa);
  }
  return accounts;
}

/**
 * Merged fan-out floor (several RegistryCredentials at once): per namespace, create every
 * Secret it gets, then one PUT of its default ServiceAccount adding every entry; `concurrency`
 * namespaces in flight.
 */
export async function floorMergedFanout(
  cluster: BenchCluster,
  plan: ReadonlyArray<{ namespace: string; secretNames: readonly string[] }>,
  password: string,
  concurrency: number,
): Promise<FloorResult> {
  const accounts = await serviceAccountsOf(
    cluster,
    plan.map((p) => p.namespace),
    ['default'],
  );
  return measured(cluster, () =>
    cluster.forEachConcurrently(plan, concurrency, async ({ namespace, secretNames }) => {
      for (const secretName of secretNames) {
        await withRetry(`create Secret ${namespace}/${secretName}`, () =>
          cluster.floorApi.createSecret(
            floorSecret(namespace, secretName, password, cluster.floorOwner),
          ),
        );
      }
      const sa = accounts.get(`${namespace}/default`);
      if (!sa) throw new Error(`no default ServiceAccount in ${namespace}`);
      await addEntries(cluster, sa, secretNames);
    }),
  );
}

/** Rotation floor over (namespace, Secret) pairs: one PUT each (from one LIST before the clock). */
export async function floorRotatePairs(
  cluster: BenchCluster,
  pairs: ReadonlyArray<{ namespace: string; secretName: string }>,
  password: string,
  concurrency: number,
): Promise<FloorResult> {
  const secrets = new Map<string, V1Secret>();
  const list = await cluster.floorCore.listSecretForAllNamespaces({
    labelSelector: FLOOR_LABEL_SELECTOR,
  });
  for (const secret of list.items) {
    secrets.set(`${secret.metadata?.namespace}/${secret.metadata?.name}`, secret);
  }
  return measured(cluster, () =>
    cluster.forEachConcurrently(pairs, concurrency, async ({ namespace, secretName }) => {
      const existing = secrets.get(`${namespace}/${secretName}`);
      if (!existing) throw new Error(`no floor Secret ${secretName} in ${namespace}`);
      const { managedFields: _managed, ...metadata } = existing.metadata ?? {};
      const body: V1Secret = {
        ...existing,
        metadata,
        data: floorSecret(namespace, secretName, password, cluster.floorOwner).data,
      };
      await withRetry(`update Secret ${namespace}/${secretName}`, () =>
        cluster.floorApi.replaceSecret(body),
      );
    }),
  );
}

/** Rotation floor: N Secret replaces (from one LIST before the clock starts). */
export async function floorRotation(
  cluster: BenchCluster,
  namespaces: readonly string[],
  secretName: string,
  password: string,
  concurrency: number,
): Promise<FloorResult> {
  const wanted = new Set(namespaces);
  const secrets = new Map<string, V1Secret>();
  const list = await cluster.floorCore.listSecretForAllNamespaces({
    labelSelector: FLOOR_LABEL_SELECTOR,
  });
  for (const secret of list.items) {
    const ns = secret.metadata?.namespace ?? '';
    if (wanted.has(ns) && secret.metadata?.name === secretName) secrets.set(ns, secret);
  }
  return measured(cluster, () =>
    cluster.forEachConcurrently(namespaces, concurrency, async (namespace) => {
      const existing = secrets.get(namespace);
      if (!existing) throw new Error(`no floor Secret ${secretName} in ${namespace}`);
      // As the operator sends it: the object it knows without managedFields, the new data.
      const { managedFields: _managed, ...metadata } = existing.metadata ?? {};
      const body: V1Secret = {
        ...existing,
        metadata,
        data: floorSecret(namespace, secretName, password, cluster.floorOwner).data,
      };
      await withRetry(`update Secret ${namespace}/${secretName}`, () =>
        cluster.floorApi.replaceSecret(body),
      );
    }),
  );
}

/**
 * Onboarding floor: a reactor on watch events. A new namespace of the run gets its Secret at
 * once; a new default ServiceAccount gets the entry (a PUT of the object the watch delivered).
 * `concurrency` writes in flight.
 */
export class OnboardingFloor {
  private readonly queue: PQueue;
  private readonly cluster: BenchCluster;
  private readonly namespaces: ReadonlySet<string>;
  private readonly password: string;
  errors: string[] = [];

  constructor(
    cluster: BenchCluster,
    namespaces: Iterable<string>,
    password: string,
    concurrency: number,
  ) {
    this.cluster = cluster;
    this.namespaces = new Set(namespaces);
    this.password = password;
    this.queue = new PQueue({ concurrency });
  }

  onNamespaceAdded(namespace: string): void {
    if (!this.namespaces.has(namespace)) return;
    this.run(0, async () => {
      try {
        await withRetry(`create Secret ${namespace}/${FLOOR_SECRET}`, () =>
          this.cluster.floorApi.createSecret(
            floorSecret(namespace, FLOOR_SECRET, this.password, this.cluster.floorOwner),
          ),
        );
      } catch (error) {
        if (httpCode(error) !== 409) throw error;
      }
    });
  }

  onServiceAccountAdded(sa: V1ServiceAccount): void {
    if (sa.metadata?.name !== 'default' || !this.namespaces.has(sa.metadata.namespace ?? ''))
      return;
    // The measured latency is the ServiceAccount's: its PUT goes ahead of queued Secret creates.
    this.run(1, () => addEntries(this.cluster, sa, [FLOOR_SECRET]));
  }

  private run(priority: number, task: () => Promise<void>): void {
    void this.queue.add(
      async () => {
        try {
          await task();
        } catch (error) {
          this.errors.push(error instanceof Error ? error.message : String(error));
        }
      },
      { priority },
    );
  }

  idle(): Promise<void> {
    return this.queue.onIdle();
  }
}

// Wiring only (controller-runtime's manager): informers feed the event mapping, the mapping
// feeds two work queues (full reconciles, single namespaces), and workers run the reconciler
// once every cache has synced and this process leads. Decisions live in controller/.
import type { KubeConfig } from '@kubernetes/client-node';
import { Subscription } from 'rxjs';
import { CLEANUP_FINALIZER } from './api/types.ts';
import type { OperatorConfig } from './config.ts';
import { effectiveSecretName } from './controller/desired.ts';
import { EventMapping, type WorkItem } from './controller/event-mapping.ts';
import { FastPathFirst } from './controller/fast-path-first.ts';
import { NamespaceWork } from './controller/namespace-work.ts';
import { ORPHANED_ENTRIES_KEY, Reconciler, RetryableSyncError } from './controller/reconciler.ts';
import { runWorkers, type StopWorkers, type WorkOutcome } from './controller/worker-pool.ts';
import { WorkQueue } from './controller/workqueue.ts';
import { TokenCache } from './credentials/token-cache.ts';
import { KubeApi } from './kube/api.ts';
import { ApiServerProbe } from './kube/api-probe.ts';
import { ClusterCaches } from './kube/cluster-view.ts';
import { EventRecorder } from './kube/events.ts';
import { KubeRest } from './kube/rest.ts';
import type { Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { memoizedImageMatcher } from './webhook/image-matcher.ts';
import { PodAdmission } from './webhook/pod-admission.ts';
import type { ImageMatcher } from './webhook/pod-mutation.ts';
import { PullIsolationWriter } from './webhook/pull-isolation.ts';
import { StuckPodRecovery } from './webhook/stuck-pod-recovery.ts';

/** How recent a Pod review must be to prove the API server is calling the webhook. */
const WEBHOOK_PROOF_WINDOW_MS = 5 * 60_000;

/** The work queue of the per-namespace fast path (workqueue_* metrics' `name`). */
const NAMESPACE_QUEUE = 'registrycredential_namespace';
/** How long a full reconcile that only updates the status waits, to coalesce a burst. */
const STATUS_COALESCE_MS = 1_000;
/**
 * Full reconciles fanned out together at most (ADR 0014, "Namespace-major writes"); new
 * credentials gather until none came for BATCH_QUIET_MS in which the event loop was free (a
 * stall is not quiet: `gatherKeys`), at most BATCH_MAX_WAIT_MS of the loop's time and twice
 * that on the wall clock. A lone new credential waits BATCH_QUIET_MS before its fan-out; with
 * stalls handled it only has to cover the gaps between a client's creates (was 200 ms).
 */
const BATCH_MAX_KEYS = 64;
const BATCH_QUIET_MS = 100;
const BATCH_MAX_WAIT_MS = 2_000;

export interface OperatorOptions {
  config: OperatorConfig;
  kc: KubeConfig;
  log: Logger;
  metrics?: Metrics;
}

export class Operator {
  readonly metrics: Metrics;
  readonly api: KubeApi;
  private readonly config: OperatorConfig;
  private readonly log: Logger;
  private readonly caches: ClusterCaches;
  private readonly mapping: EventMapping;
  /** Catches a hung API server that open watches cannot tell from a quiet one. */
  private readonly apiProbe: ApiServerProbe;
  /** RegistryCredential names: the full reconcile (targets, cleanup, status). */
  private readonly queue: WorkQueue;
  /**
   * Namespaces synced from the caches for the credentials due there (the onboarding fast
   * path). Its own workers, so a burst of new namespaces is not served by the few workers
   * that also run full reconciles of every namespace.
   */
  private readonly namespaceWork: NamespaceWork;
  private readonly fastPathFirst: FastPathFirst;
  private readonly reconciler: Reconciler;
  private subscription?: Subscription;
  /**
   * Ends every request the workers make: aborted when this process stops (lost lease or
   * shutdown), so no write starts, and none in flight goes on, once it no longer leads.
   */
  private readonly leadership = new AbortController();
  private stopWorkers: StopWorkers[] = [];
  private leading = false;
  /** The Pod webhook (every replica serves it), when enabled. */
  readonly admission?: PodAdmission;
  /** Pods stuck pulling for want of a Secret: Events, and evictions with --evict-stuck-pods. */
  readonly stuckPods?: StuckPodRecovery;
  private readonly pullIsolation?: PullIsolationWriter;

  constructor({ config, kc, log, metrics }: OperatorOptions) {
    this.config = config;
    this.log = log;
    this.metrics = metrics ?? new Metrics({ processMetrics: false });
    this.api = new KubeApi(kc, this.metrics.observeRequest);
    const unhealthyAfterMs = config.informerUnhealthyAfterMs;
    this.caches = new ClusterCaches(kc, {
      sourceNamespaces: config.sourceNamespaces,
      log,
      unhealthyAfterMs,
      resyncIntervalMs: config.informerResyncMs,
    });
    this.apiProbe = new ApiServerProbe(kc, { unhealthyAfterMs });
    this.queue = new WorkQueue({ metrics: this.metrics.queueMetrics() });
    this.namespaceWork = new NamespaceWork(
      new WorkQueue({ metrics: this.metrics.queueMetrics(NAMESPACE_QUEUE) }),
    );
    const fastPathQueue = this.namespaceWork.queue;
    this.fastPathFirst = new FastPathFirst(() =>
      fastPathQueue.shuttingDown() ? 0 : fastPathQueue.len(),
    );
    const leaderApi = this.api.withSignal(this.leadership.signal);
    this.reconciler = new Reconciler({
      view: this.caches,
      api: leaderApi,
      events: new EventRecorder(leaderApi, log, config.identity),
      log,
      policy: {
        operatorNamespace: config.namespace,
        allowedSourceNamespaces: new Set(config.sourceNamespaces),
      },
      fanoutConcurrency: config.fanoutConcurrency,
      workers: config.workers,
      tokens: new TokenCache(),
      endpoints: config.cloudEndpoints,
      onRefresh: (credential, source, ok) => {
        if (!ok) this.metrics.refreshFailures.inc({ registrycredential: credential, source });
      },
      onStatus: (name, status) => this.metrics.credentialStatus(name, status),
      fastPathFirst: this.fastPathFirst,
    });
    const caches = this.caches;
    const namespaces = this.reconciler.namespaces;
    const operator = this;
    this.mapping = new EventMapping({
      get leading() {
        return operator.leading;
      },
      operatorNamespace: config.namespace,
      credentials: () => caches.cachedCredentials(),
      credential: (name) => caches.cachedCredential(name),
      namespace: (name) => caches.cachedNamespace(name),
      secretsIn: (namespace) => caches.cachedSecretsIn(namespace),
      isSourceNamespace: (namespace) => caches.isSourceNamespace(namespace),
      upToDate: (secret, credential) => namespaces.upToDate(secret, credential),
      fullReconcileCovers: (credential, namespace) =>
        operator.queue.isDirty(credential) || operator.reconciler.covers(credential, namespace),
    });
    // The kubelet's own matching of an image to an auths key (kubelet-keyring.ts), remembered,
    // bounded in bytes, and refused for images longer than any valid reference (image-matcher.ts).
    const matchesImage: ImageMatcher = memoizedImageMatcher({ log }).matches;
    if (config.podWebhook) {
      this.admission = new PodAdmission({
        config: config.podWebhook,
        namespace: config.namespace,
        kc,
        caches,
        metrics: this.metrics,
        log,
        leading: () => operator.leading,
        matchesImage,
      });
      this.pullIsolation = new PullIsolationWriter({
        rest: new KubeRest(kc),
        caches,
        observations: this.admission.observations,
        log,
      });
    }
    if (config.podWebhook || config.evictStuckPods) {
      this.stuckPods = new StuckPodRecovery({
        kc,
        rest: new KubeRest(kc),
        caches,
        log,
        registry: this.metrics.registry,
        matchesImage,
        evict: config.evictStuckPods,
        // Proven only by a well-formed Pod review lately (not any POST: every Pod can reach the
        // Service), so a configuration deleted or broken stops counting; a replacement Pod
        // that comes back without the Secret stops evictions of its owner anyway.
        webhookServing: () =>
          operator.admission?.server.reviewedWithin(WEBHOOK_PROOF_WINDOW_MS) ?? false,
        operatorNamespace: config.namespace,
        unhealthyAfterMs,
        identity: config.identity,
      });
    }
  }

  /** Starts the informers and the event mapping; resolves once every cache has synced. */
  async startCaches(): Promise<void> {
    const { caches, mapping } = this;
    const subscription = new Subscription();
    subscription.add(
      caches.credentialEvents$.subscribe((e) => {
        this.schedule(mapping.credential(e, caches.observedCredential(e)));
        if (caches.hasSynced()) this.watchSecretNames();
      }),
    );
    subscription.add(
      caches.namedSecretEvents$.subscribe((e) => this.schedule(mapping.namedSecret(e))),
    );
    subscription.add(caches.namespaceEvents$.subscribe((e) => this.schedule(mapping.namespace(e))));
    subscription.add(
      caches.serviceAccountEvents$.subscribe((e) => {
        caches.observedServiceAccount(e);
        this.schedule(mapping.serviceAccount(e));
      }),
    );
    subscription.add(
      caches.secretEvents$.subscribe((e) =>
        this.schedule(mapping.secret(e, caches.observedSecret(e))),
      ),
    );
    this.subscription = subscription;
    caches.start();
    this.stuckPods?.start();
    this.apiProbe.start();
    await Promise.all([caches.synced(), this.stuckPods?.synced]);
    this.watchSecretNames();
    this.log.info('caches synced', {
      registryCredentials: caches.cachedCredentials().length,
      namespaces: [...caches.namespaces()].length,
    });
    // Served only from synced caches: before that a Pod would be admitted unchanged.
    await this.admission?.start();
  }

  /**
   * Runs the workers (call on the leader only, after startCaches). `leadership` aborts when
   * the lease is lost (at the renew deadline): every request the workers make ends with it.
   */
  startWorkers(leadership?: AbortSignal): void {
    if (this.leading) return;
    this.leading = true;
    if (leadership?.aborted) this.leadership.abort(leadership.reason);
    leadership?.addEventListener('abort', () => this.leadership.abort(leadership.reason), {
      once: true,
    });
    for (const cred of this.caches.cachedCredentials()) this.queue.add(cred.metadata.name ?? '');
    void this.admission?.becameLeader();
    this.stuckPods?.lead(this.leadership.signal);
    this.pullIsolation?.lead(this.leadership.signal);
    // A credential deleted while no leader ran left no key behind: look for its entries once.
    this.queue.add(ORPHANED_ENTRIES_KEY);
    const options = {
      logger: this.log,
      onResult: (key: string, outcome: WorkOutcome) => {
        this.log.debug('reconciled', {
          key,
          outcome: outcome.kind,
          durationMs: Math.round(outcome.durationMs),
        });
        const result =
          outcome.kind === 'error' ? 'error' : outcome.requeueAfterMs ? 'requeue_after' : 'success';
        this.metrics.reconciled(result, outcome.durationMs / 1000);
      },
    };
    this.stopWorkers = [
      runWorkers(this.queue, this.config.workers, (key) => this.reconciler.reconcile(key), {
        ...options,
        batching: {
          // Full reconciles due together fan out together (ADR 0014, "Namespace-major writes").
          accepts: (key) => key !== ORPHANED_ENTRIES_KEY,
          gathers: (key) => this.isNewCredential(key),
          maxKeys: BATCH_MAX_KEYS,
          quietMs: BATCH_QUIET_MS,
          maxWaitMs: BATCH_MAX_WAIT_MS,
          handler: (keys) => this.reconciler.reconcileTogether(keys),
        },
      }),
      runWorkers(
        this.namespaceWork.queue,
        this.config.fanoutConcurrency,
        (namespace) => this.reconcileNamespace(namespace),
        options,
      ),
    ];
  }

  /**
   * Stops writing at once (in-flight requests are aborted), stops taking work, waits for the
   * workers to return (bounded), stops the informers.
   */
  async stop(drainMs = 30_000): Promise<void> {
    this.leadership.abort();
    this.queue.shutDown();
    this.namespaceWork.queue.shutDown();
    this.fastPathFirst.changed();
    if (this.stopWorkers.length > 0) {
      await Promise.race([
        Promise.all(this.stopWorkers.map((stop) => stop())),
        new Promise((r) => setTimeout(r, drainMs).unref()),
      ]);
    }
    this.subscription?.unsubscribe();
    await Promise.all([
      this.apiProbe.stop(),
      this.caches.stop(),
      this.admission?.stop(),
      this.stuckPods?.stop(),
    ]);
    this.pullIsolation?.stop();
  }

  health(): { synced: boolean; healthy: boolean; detail: string } {
    const states = [
      ...this.caches.health(),
      ...(this.stuckPods ? [this.stuckPods.informer.health()] : []),
      this.apiProbe.health(),
    ];
    const broken = states.filter((s) => !s.healthy);
    return {
      synced: states.every((s) => s.synced),
      healthy: broken.length === 0,
      detail: broken.map((s) => s.lastError ?? 'informer broken').join('; ') || 'ok',
    };
  }

  /** Conflicts and hand-overs come from a cache of the names credentials write. */
  private watchSecretNames(): void {
    this.caches.watchSecretNames(
      new Set(this.caches.cachedCredentials().map((cred) => effectiveSecretName(cred))),
    );
  }

  /**
   * A RegistryCredential not reconciled yet (no finalizer): created, likely with others in a
   * burst, whose full reconciles gather to fan out together.
   */
  private isNewCredential(name: string): boolean {
    const cred = this.caches.cachedCredential(name);
    return (
      cred !== undefined &&
      !cred.metadata.deletionTimestamp &&
      !(cred.metadata.finalizers ?? []).includes(CLEANUP_FINALIZER)
    );
  }

  /** The fast path of every credential due in `namespace`, each settled on its own result. */
  private async reconcileNamespace(namespace: string): Promise<Record<string, never>> {
    // A worker took it: the backlog the fan-outs yield to is shorter.
    this.fastPathFirst.changed();
    const credentials = this.namespaceWork.take(namespace);
    if (credentials.length === 0) return {};
    let results: Awaited<ReturnType<Reconciler['namespaces']['reconcileNamespaces']>>;
    try {
      results = await this.reconciler.namespaces.reconcileNamespaces(namespace, credentials);
    } catch (error) {
      results = credentials.map(() => ({ status: 'rejected', reason: error }));
    }
    const failed: string[] = [];
    let firstError: unknown;
    results.forEach((result, i) => {
      const credential = credentials[i] as string;
      if (result.status === 'rejected') {
        failed.push(credential);
        firstError ??= result.reason;
      } else if (result.value.fullReconcile) {
        // What the fast path leaves to the full reconcile: a conflict, a source or refresh
        // error, an invalid selector, a namespace no longer selected (or gone).
        this.queue.add(credential);
      }
    });
    if (failed.length === 0) return {};
    // Retried with the namespace's backoff; meanwhile their status says it failed.
    this.namespaceWork.retry(namespace, failed);
    this.schedule(failed.map((credential) => ({ queue: 'status', credential })));
    const reason = firstError instanceof Error ? firstError.message : String(firstError);
    throw new RetryableSyncError(`sync of ${failed.join(', ')} failed: ${reason}`);
  }

  private schedule(items: readonly WorkItem[]): void {
    for (const item of items) {
      if (item.queue === 'full') this.queue.add(item.credential);
      else if (item.queue === 'namespace') {
        this.namespaceWork.add(item.credential, item.namespace, { urgent: item.urgent });
      } else if (this.leading) this.queue.addAfter(item.credential, STATUS_COALESCE_MS);
    }
  }
}

// Prometheus metrics, with controller-runtime's names where they fit so existing dashboards and
// alerts work unchanged, plus the product's own.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

const CONTROLLER = 'registrycredential';
const RECONCILE_RESULTS = ['success', 'error', 'requeue_after'] as const;
export type ReconcileResult = (typeof RECONCILE_RESULTS)[number];

export class Metrics {
  readonly registry = new Registry();

  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly workqueueDepth = new Gauge({
    name: 'workqueue_depth',
    help: 'Current depth of workqueue',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly workqueueAdds = new Counter({
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by workqueue',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly workqueueQueueDuration = new Histogram({
    name: 'workqueue_queue_duration_seconds',
    help: 'How long in seconds an item stays in workqueue before being requested',
    labelNames: ['name'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
    registers: [this.registry],
  });
  readonly workqueueWorkDuration = new Histogram({
    name: 'workqueue_work_duration_seconds',
    help: 'How long in seconds processing an item from workqueue takes',
    labelNames: ['name'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
    registers: [this.registry],
  });
  readonly workqueueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Total number of retries handled by workqueue',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly leaderStatus = new Gauge({
    name: 'leader_election_master_status',
    help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly targetNamespaces = new Gauge({
    name: 'regcred_target_namespaces',
    help: 'Namespaces a RegistryCredential targets',
    labelNames: ['registrycredential'] as const,
    registers: [this.registry],
  });
  readonly syncedNamespaces = new Gauge({
    name: 'regcred_synced_namespaces',
    help: 'Namespaces holding the current Secret and ServiceAccount entries',
    labelNames: ['registrycredential'] as const,
    registers: [this.registry],
  });
  readonly failedNamespaces = new Gauge({
    name: 'regcred_failed_namespaces',
    help: 'Target namespaces that could not be synced (the full count, not only those listed in status)',
    labelNames: ['registrycredential'] as const,
    registers: [this.registry],
  });
  readonly lastSyncTimestamp = new Gauge({
    name: 'regcred_last_sync_timestamp_seconds',
    help: 'When a RegistryCredential last finished a sync (its status computed), in Unix seconds; not moved while it is suspended',
    labelNames: ['registrycredential'] as const,
    registers: [this.registry],
  });
  /** registrycredential → its cloud registries' expiry, read at scrape time. */
  private readonly expiries = new Map<
    string,
    Array<{ server: string; source: string; expiresAt: number }>
  >();
  readonly tokenExpirySeconds: Gauge<'registrycredential' | 'server' | 'source'>;
  readonly refreshFailures = new Counter({
    name: 'regcred_refresh_failures_total',
    help: 'Failed token refreshes',
    labelNames: ['registrycredential', 'source'] as const,
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: 'regcred_api_requests_total',
    help: 'Requests to the Kubernetes API outside the informers, by resource, verb and HTTP code',
    labelNames: ['resource', 'verb', 'code'] as const,
    registers: [this.registry],
  });
  readonly apiWrites = new Counter({
    name: 'regcred_api_writes_total',
    help: 'Successful writes to the Kubernetes API by resource and verb',
    labelNames: ['resource', 'verb'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    const expiries = this.expiries;
    this.tokenExpirySeconds = new Gauge({
      name: 'regcred_token_expiry_seconds',
      help: 'Seconds until a registry token expires (negative: expired)',
      labelNames: ['registrycredential', 'server', 'source'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const [registrycredential, list] of expiries) {
          for (const e of list) {
            this.set(
              { registrycredential, server: e.server, source: e.source },
              (e.expiresAt - now) / 1000,
            );
          }
        }
      },
    });
    // The event-loop lag histogram sampled every 100 ms, not prom-client's 10: at 10 ms its
    // monitor woke the idle operator 100 times a second (6-14 ms of CPU per second, on the
    // event loop the Pod webhook answers on; 2 ms/s at 100 ms, bench/README, issue #18). A stall
    // longer than 100 ms is still seen whole.
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    }
    // Like controller-runtime, start every reconcile series at 0: a series that only appears
    // with the first error makes `rate(errors) / rate(total)` and `increase(errors) > 0`
    // alerts blind until then.
    for (const result of RECONCILE_RESULTS) {
      this.reconcileTotal.inc({ controller: CONTROLLER, result }, 0);
    }
    this.reconcileErrors.inc({ controller: CONTROLLER }, 0);
  }

  /** Plugs into KubeApi's request observer. */
  observeRequest = (resource: string, verb: string, code: number): void => {
    this.apiRequests.inc({ resource, verb, code: String(code) });
    if (verb !== 'get' && code >= 200 && code < 300) this.apiWrites.inc({ resource, verb });
  };

  /** Plugs into the WorkQueue. */
  queueMetrics(name = CONTROLLER) {
    // client-go creates a queue's series when the queue is made, so they read 0, not absent.
    this.workqueueDepth.set({ name }, 0);
    this.workqueueAdds.inc({ name }, 0);
    this.workqueueRetries.inc({ name }, 0);
    return {
      depth: (n: number) => this.workqueueDepth.set({ name }, n),
      add: () => this.workqueueAdds.inc({ name }),
      queueDuration: (seconds: number) => this.workqueueQueueDuration.observe({ name }, seconds),
      workDuration: (seconds: number) => this.workqueueWorkDuration.observe({ name }, seconds),
      retry: () => this.workqueueRetries.inc({ name }),
    };
  }

  reconciled(result: ReconcileResult, seconds: number): void {
    this.reconcileTotal.inc({ controller: CONTROLLER, result });
    if (result === 'error') this.reconcileErrors.inc({ controller: CONTROLLER });
    this.reconcileTime.observe({ controller: CONTROLLER }, seconds);
  }

  tokenExpiries(
    name: string,
    registries: ReadonlyArray<{ server: string; source: string; expiresAt?: string }>,
  ): void {
    const list = registries
      .filter((r) => r.expiresAt !== undefined)
      .map((r) => ({
        server: r.server,
        source: r.source,
        expiresAt: Date.parse(r.expiresAt ?? ''),
      }));
    if (list.length > 0) this.expiries.set(name, list);
    else this.expiries.delete(name);
  }

  /** A credential's latest status (undefined: it is gone, and so are its series). */
  credentialStatus(
    name: string,
    status:
      | {
          targetNamespaces?: number;
          syncedNamespaces?: number;
          failedNamespaceCount?: number;
          failedNamespaces?: readonly unknown[];
          conditions?: ReadonlyArray<{ type: string; reason: string }>;
          registries?: ReadonlyArray<{ server: string; source: string; expiresAt?: string }>;
        }
      | undefined,
    now: () => number = Date.now,
  ): void {
    if (!status) {
      this.forgetCredential(name);
      return;
    }
    this.targetNamespaces.set({ registrycredential: name }, status.targetNamespaces ?? 0);
    this.tokenExpiries(name, status.registries ?? []);
    this.syncedNamespaces.set({ registrycredential: name }, status.syncedNamespaces ?? 0);
    this.failedNamespaces.set(
      { registrycredential: name },
      status.failedNamespaceCount ?? status.failedNamespaces?.length ?? 0,
    );
    const suspended = status.conditions?.some(
      (c) => c.type === 'Synced' && c.reason === 'Suspended',
    );
    if (!suspended) this.lastSyncTimestamp.set({ registrycredential: name }, now() / 1000);
  }

  forgetCredential(name: string): void {
    this.expiries.delete(name);
    this.targetNamespaces.remove({ registrycredential: name });
    this.syncedNamespaces.remove({ registrycredential: name });
    this.failedNamespaces.remove({ registrycredential: name });
    this.lastSyncTimestamp.remove({ registrycredential: name });
  }
}

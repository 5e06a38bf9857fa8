// Carries out decideStuckPod on the leader: a cache of Pods (trimmed to what the decision
// reads), a set of those currently failing to pull, and a periodic pass over that set. An
// eviction goes through the Eviction API, so PodDisruptionBudgets are respected (a 429 is
// retried on a later pass); evictions are rate-limited; each Pod gets one Event. Only Pending
// Pods are cached (a field selector), trimmed to what the decision reads.
import type { CoreV1Event, KubeConfig, V1Pod } from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { Observable } from 'rxjs';
import { type Clock, systemClock } from '../clock.ts';
import { TokenBucket } from '../controller/rate-limiter.ts';
import type { ClusterCaches } from '../kube/cluster-view.ts';
import { Informer, type InformerEvent, type InformerHealth } from '../kube/informer.ts';
import { KubeApiError, type KubeRest, segment } from '../kube/rest.ts';
import type { Logger } from '../observability/logger.ts';
import type { ImageMatcher } from './pod-mutation.ts';
import {
  compactPod,
  decideStuckPod,
  PULL_FAILURE_REASONS,
  type StuckPodDecision,
} from './stuck-pods.ts';

const PASS_INTERVAL_MS = 2_000;
const COMPONENT = 'regcred-operator';
/** After an eviction, how long a replacement stuck the same way stops evictions of its owner. */
export const EVICTION_LOOP_WINDOW_MS = 10 * 60_000;

/** The cache of Pending Pods (an Informer; tests give their own). */
export interface PodSource {
  readonly events$: Observable<InformerEvent<V1Pod>>;
  readonly synced: Promise<void>;
  get(key: string): V1Pod | undefined;
  health(): InformerHealth;
  start(): void;
  stop(): Promise<void>;
}

export interface StuckPodRecoveryOptions {
  kc: KubeConfig;
  rest: KubeRest;
  caches: ClusterCaches;
  log: Logger;
  registry: Registry;
  matchesImage: ImageMatcher;
  evict: boolean;
  webhookServing: () => boolean;
  /** The operator's namespace (the webhook's namespaceSelector leaves it out). */
  operatorNamespace?: string;
  unhealthyAfterMs: number;
  /** Evictions per second, and the burst allowed. */
  evictionRate?: { qps: number; burst: number };
  identity: string;
  clock?: Clock;
  /** Instead of an Informer over the API server (tests). */
  pods?: PodSource;
}

function failing(pod: V1Pod): boolean {
  return [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ].some((s) => PULL_FAILURE_REASONS.has(s.state?.waiting?.reason ?? ''));
}

export class StuckPodRecovery {
  readonly informer: PodSource;
  private readonly o: StuckPodRecoveryOptions;
  private readonly log: Logger;
  private readonly candidates = new Set<string>();
  /** Pod uids already given an Event for this decision kind (`uid/kind`). */
  private readonly told = new Set<string>();
  private readonly limiter: TokenBucket;
  private readonly evicted: Counter<'registrycredential'>;
  private readonly reported: Counter<'registrycredential' | 'action'>;
  private timer?: NodeJS.Timeout;
  private signal?: AbortSignal;
  private readonly clock: Clock;
  /**
   * Per controller (its uid): when we first evicted one of its Pods in the current window, and
   * whether a replacement came back stuck the same way (then none of its Pods is evicted again
   * until the window ends: the webhook is not adding the Secret, whatever proved it serving).
   */
  private readonly ownerEvictions = new Map<string, { at: number; looping: boolean }>();

  constructor(o: StuckPodRecoveryOptions) {
    this.o = o;
    this.log = o.log.child({ component: 'stuck-pods' });
    this.clock = o.clock ?? systemClock;
    this.informer =
      o.pods ??
      new Informer<V1Pod>(o.kc, {
        path: '/api/v1/pods',
        // A Pod stuck pulling is Pending and on a node (a kubelet tried the pull): running,
        // finished and unscheduled Pods are never cached, and a Pod being created reaches us
        // only once bound, not while the API server waits for our webhook's answer on it.
        fieldSelector: 'status.phase=Pending,spec.nodeName!=',
        transform: compactPod,
        logger: this.log,
        unhealthyAfterMs: o.unhealthyAfterMs,
      });
    const rate = o.evictionRate ?? { qps: 1, burst: 5 };
    this.limiter = new TokenBucket(rate.qps, rate.burst, this.clock);
    this.evicted = new Counter({
      name: 'regcred_stuck_pods_evicted_total',
      help: "Pods stuck pulling for want of a credential's Secret that were evicted so their controller recreates them",
      labelNames: ['registrycredential'] as const,
      registers: [o.registry],
    });
    this.reported = new Counter({
      name: 'regcred_stuck_pods_reported_total',
      help: "Pods stuck pulling for want of a credential's Secret that were given an Event, by what the Event says",
      labelNames: ['registrycredential', 'action'] as const,
      registers: [o.registry],
    });
    this.informer.events$.subscribe((e) => {
      const key = `${e.object.metadata?.namespace}/${e.object.metadata?.name}`;
      if (e.type !== 'delete' && failing(e.object)) this.candidates.add(key);
      else this.candidates.delete(key);
    });
  }

  start(): void {
    this.informer.start();
  }

  get synced(): Promise<void> {
    return this.informer.synced;
  }

  /** Acts on candidates until `leadership` aborts (leader only: it writes). */
  lead(leadership: AbortSignal): void {
    this.signal = leadership;
    const pass = () => {
      if (leadership.aborted) return;
      this.pass().then(schedule, (error: unknown) => {
        this.log.warn('stuck Pod pass failed', {
          error: error instanceof Error ? error.message : String(error),
        });
        schedule();
      });
    };
    const schedule = () => {
      if (leadership.aborted) return;
      this.timer = setTimeout(pass, PASS_INTERVAL_MS);
      this.timer.unref();
    };
    schedule();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.informer.stop();
  }

  /** One pass over the Pods failing to pull. */
  async pass(): Promise<void> {
    const { caches } = this.o;
    const now = this.clock.now();
    for (const [owner, record] of this.ownerEvictions) {
      if (now - record.at >= EVICTION_LOOP_WINDOW_MS) this.ownerEvictions.delete(owner);
    }
    for (const key of [...this.candidates]) {
      const pod = this.informer.get(key);
      if (!pod) {
        this.candidates.delete(key);
        continue;
      }
      const namespace = pod.metadata?.namespace ?? '';
      const decision = decideStuckPod(pod, {
        namespace: caches.namespace(namespace),
        credentials: caches.credentials(),
        unmanagedSecret: (ns, name) => caches.unmanagedSecret(ns, name),
        managedSecret: (ns, name) => caches.managedSecret(ns, name),
        serviceAccount: (ns, name) =>
          caches.serviceAccounts(ns).find((sa) => sa.metadata?.name === name),
        webhookServing: this.o.webhookServing(),
        ...(this.o.operatorNamespace ? { operatorNamespace: this.o.operatorNamespace } : {}),
        matchesImage: this.o.matchesImage,
      });
      await this.act(pod, decision);
    }
  }

  private async act(pod: V1Pod, d: StuckPodDecision): Promise<void> {
    if (d.kind === 'none' || d.kind === 'wait') return;
    const uid = pod.metadata?.uid ?? '';
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? '';
    const lacks = `was created without imagePullSecret ${d.secret}, which RegistryCredential ${d.credential} provides for ${d.image}`;
    if (d.kind === 'evict' && this.o.evict) {
      const controller = (pod.metadata?.ownerReferences ?? []).find((r) => r.controller === true);
      const ownerKey = `${namespace}/${controller?.uid || d.owner}`;
      const previous = this.ownerEvictions.get(ownerKey);
      if (previous) {
        const created = Date.parse(String(pod.metadata?.creationTimestamp ?? ''));
        // Created after (or about when: timestamps are whole seconds) we evicted a sibling for
        // this same reason, or of unknown age: a replacement that came without the Secret.
        const replacement = !(created < previous.at - 1_000);
        if (replacement || previous.looping) {
          if (!previous.looping) {
            previous.looping = true;
            this.log.warn(
              'a replacement Pod came back stuck without its pull Secret: not evicting its owner again for now',
              {
                namespace,
                pod: name,
                owner: d.owner,
                registryCredential: d.credential,
              },
            );
          }
          const minutes = Math.ceil(
            (previous.at + EVICTION_LOOP_WINDOW_MS - this.clock.now()) / 60_000,
          );
          await this.tellOnce(
            pod,
            'loop',
            'Warning',
            `${lacks}; a Pod of ${d.owner} was evicted for this and its replacement was created without the Secret again (the Pod webhook did not add it: is its MutatingWebhookConfiguration in place, and does it select this namespace?). Not evicting Pods of ${d.owner} for ${minutes} min: delete the Pod once its ServiceAccount lists ${d.secret}`,
            d.credential,
          );
          return;
        }
      }
      // Only a token there now: a Pod skipped here must not leave a debt for the next ones.
      if (!this.limiter.tryTake()) return; // the next pass tries again
      try {
        await this.o.rest.send(
          {
            method: 'POST',
            path: `/api/v1/namespaces/${segment(namespace)}/pods/${segment(name)}/eviction`,
            body: {
              apiVersion: 'policy/v1',
              kind: 'Eviction',
              metadata: { name, namespace },
              deleteOptions: { preconditions: { uid } },
            },
            ...(this.signal ? { signal: this.signal } : {}),
          },
          `evict Pod ${namespace}/${name}`,
        );
      } catch (error) {
        if (error instanceof KubeApiError && error.code === 429) {
          // A PodDisruptionBudget allows no disruption now: say so once, try again later.
          await this.tellOnce(
            pod,
            'blocked',
            'Warning',
            `${lacks}; its eviction waits for a PodDisruptionBudget`,
            d.credential,
          );
          return;
        }
        if (error instanceof KubeApiError && (error.notFound || error.conflict)) {
          this.candidates.delete(`${namespace}/${name}`);
          return;
        }
        throw error;
      }
      this.candidates.delete(`${namespace}/${name}`);
      if (!previous) this.ownerEvictions.set(ownerKey, { at: this.clock.now(), looping: false });
      this.evicted.inc({ registrycredential: d.credential });
      this.log.info('evicted a Pod stuck pulling without its pull Secret', {
        namespace,
        pod: name,
        owner: d.owner,
        registryCredential: d.credential,
      });
      await this.tellOnce(
        pod,
        'evicted',
        'Normal',
        `${lacks}; evicted so that ${d.owner} recreates it with the Secret`,
        d.credential,
      );
      return;
    }
    const advice =
      d.kind === 'evict'
        ? `; delete it (or run the operator with --evict-stuck-pods) so that ${d.owner} recreates it with the Secret`
        : '; nothing recreates this Pod: delete it and create it again to pull with the Secret';
    await this.tellOnce(pod, 'reported', 'Warning', `${lacks}${advice}`, d.credential);
  }

  private async tellOnce(
    pod: V1Pod,
    action: string,
    type: 'Normal' | 'Warning',
    message: string,
    credential: string,
  ): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    const key = `${uid}/${action}`;
    if (this.told.has(key)) return;
    const namespace = pod.metadata?.namespace ?? '';
    const now = new Date(this.clock.now());
    const event: CoreV1Event = {
      metadata: {
        name: `${pod.metadata?.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
        namespace,
      },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, namespace, uid },
      type,
      reason: 'MissingPullSecret',
      message: message.slice(0, 1024),
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: COMPONENT, host: this.o.identity },
      reportingComponent: COMPONENT,
      reportingInstance: this.o.identity,
    };
    try {
      await this.o.rest.send(
        {
          method: 'POST',
          path: `/api/v1/namespaces/${segment(namespace)}/events`,
          body: event,
          ...(this.signal ? { signal: this.signal } : {}),
        },
        'create Event',
      );
      this.told.add(key);
      if (this.told.size > 10_000) this.told.delete(this.told.values().next().value ?? '');
      this.reported.inc({ registrycredential: credential, action });
    } catch (error) {
      this.log.warn('could not record Event on Pod', {
        namespace,
        pod: pod.metadata?.name,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

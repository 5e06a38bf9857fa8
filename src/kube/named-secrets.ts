// Secrets that hold a name a RegistryCredential writes, but are not ours: a conflict, or one
// handed over with the adopt annotation. One informer per secretName in use, each selecting
// Secrets by that name cluster-wide and without our managed-by label (ours are in the managed
// cache), kept as metadata and a digest of the data. A conflict then costs no request per
// reconcile, and an adopt annotation or a deleted conflicting Secret arrives as an event.
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import { type Observable, Subject, type Subscription } from 'rxjs';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../api/types.ts';
import { Informer, type InformerEvent, type InformerHealth } from './informer.ts';
import { secretWeight } from './secret-informers.ts';

export interface NamedSecretsOptions {
  logger: ConstructorParameters<typeof Informer>[1]['logger'];
  unhealthyAfterMs: number;
  /** Resync period of each informer (default 10 min, 0 off). */
  resyncIntervalMs?: number;
  /** How the cached Secrets are kept (a digest of the data, trimmed metadata). */
  transform: (secret: V1Secret) => V1Secret;
}

interface Watched {
  informer: Informer<V1Secret>;
  subscription: Subscription;
}

export class NamedSecrets {
  private readonly kc: KubeConfig;
  private readonly options: NamedSecretsOptions;
  private readonly watched = new Map<string, Watched>();
  private readonly events = new Subject<InformerEvent<V1Secret>>();
  readonly events$: Observable<InformerEvent<V1Secret>> = this.events.asObservable();
  private stopped = false;

  constructor(kc: KubeConfig, options: NamedSecretsOptions) {
    this.kc = kc;
    this.options = options;
  }

  /** Watches exactly `names` from now on: new ones start, names no longer used stop. */
  watch(names: ReadonlySet<string>): void {
    if (this.stopped) return;
    for (const [name, w] of this.watched) {
      if (names.has(name)) continue;
      this.watched.delete(name);
      w.subscription.unsubscribe();
      void w.informer.stop();
    }
    for (const name of names) {
      if (this.watched.has(name) || name === '') continue;
      const informer = new Informer<V1Secret>(this.kc, {
        path: '/api/v1/secrets',
        fieldSelector: `metadata.name=${name}`,
        labelSelector: `${MANAGED_BY_LABEL}!=${MANAGED_BY_VALUE}`,
        transform: this.options.transform,
        weigh: secretWeight,
        name: `secrets/named/${name}`,
        ...(this.options.logger ? { logger: this.options.logger } : {}),
        unhealthyAfterMs: this.options.unhealthyAfterMs,
        ...(this.options.resyncIntervalMs !== undefined
          ? { resyncIntervalMs: this.options.resyncIntervalMs }
          : {}),
      });
      const subscription = informer.events$.subscribe((e) => this.events.next(e));
      this.watched.set(name, { informer, subscription });
      informer.start();
    }
  }

  /**
   * The Secret `namespace/name` that is not ours: the object, null when there is none, or
   * undefined when that name is not watched or not listed yet (then ask the API server).
   */
  get(namespace: string, name: string): V1Secret | null | undefined {
    const w = this.watched.get(name);
    if (!w?.informer.hasSynced()) return undefined;
    return w.informer.get(`${namespace}/${name}`) ?? null;
  }

  health(): InformerHealth[] {
    return [...this.watched.values()].map((w) => w.informer.health());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.watched.values()];
    this.watched.clear();
    for (const w of all) w.subscription.unsubscribe();
    await Promise.all(all.map((w) => w.informer.stop()));
    this.events.complete();
  }
}

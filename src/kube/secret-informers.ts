// The operator's view of Secrets without caching every Secret in the cluster: one informer per
// allowed source namespace, plus one cluster-wide informer on the Secrets it manages (selected
// by its managed-by label), read as a single cache.
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import { merge, type Observable } from 'rxjs';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../api/types.ts';
import { DOCKER_CONFIG_JSON_TYPE } from '../credentials/dockerconfigjson.ts';
import {
  Informer,
  type InformerEvent,
  type InformerHealth,
  type InformerOptions,
  type KubeObject,
  type ObjectCache,
  objectKey,
} from './informer.ts';

/**
 * Several informers read as one cache. An object may sit in more than one of them (a managed
 * Secret inside a source namespace): reads return the first informer's copy, and each informer
 * emits its own events, so a change can arrive twice. Consumers are level-triggered (they
 * enqueue a key and re-read the cache), which makes the repeat harmless.
 */
export class InformerUnion<T extends KubeObject> implements ObjectCache<T> {
  readonly informers: readonly Informer<T>[];
  readonly events$: Observable<InformerEvent<T>>;
  readonly synced: Promise<void>;

  /** The namespace each member watches; absent for a cluster-wide one. */
  private readonly namespaces: ReadonlyMap<Informer<T>, string>;

  constructor(
    informers: readonly Informer<T>[],
    namespaces: ReadonlyMap<Informer<T>, string> = new Map(),
  ) {
    this.informers = informers;
    this.namespaces = namespaces;
    this.events$ = merge(...informers.map((informer) => informer.events$));
    this.synced = Promise.all(informers.map((informer) => informer.synced)).then(() => {});
    this.synced.catch(() => {});
  }

  start(): void {
    for (const informer of this.informers) informer.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((informer) => informer.stop()));
  }

  hasSynced(): boolean {
    return this.informers.every((informer) => informer.hasSynced());
  }

  /**
   * The resourceVersion up to which the members that may hold objects of `namespace` (those
   * watching it, and the cluster-wide ones) have seen every change; -1 before they listed.
   */
  seenThrough(namespace: string): number {
    let lowest = Number.POSITIVE_INFINITY;
    for (const informer of this.informers) {
      const scope = this.namespaces.get(informer);
      if (scope !== undefined && scope !== namespace) continue;
      const rv = Number(informer.resourceVersion);
      lowest = Math.min(lowest, Number.isFinite(rv) ? rv : -1);
    }
    return Number.isFinite(lowest) ? lowest : -1;
  }

  /** Synced and healthy only if every member is; the oldest breakage is reported. */
  health(): InformerHealth {
    const all = this.informers.map((informer) => informer.health());
    const broken = all
      .filter((h) => h.brokenSince !== undefined)
      .sort((a, b) => (a.brokenSince?.getTime() ?? 0) - (b.brokenSince?.getTime() ?? 0))[0];
    return {
      synced: all.every((h) => h.synced),
      healthy: all.every((h) => h.healthy),
      lastError: broken?.lastError ?? all.find((h) => h.lastError)?.lastError,
      brokenSince: broken?.brokenSince,
    };
  }

  get(key: string): T | undefined {
    for (const informer of this.informers) {
      const obj = informer.get(key);
      if (obj) return obj;
    }
    return undefined;
  }

  list(): T[] {
    return this.#union((informer) => informer.list());
  }

  byNamespace(namespace: string): T[] {
    return this.#union((informer) => informer.byNamespace(namespace));
  }

  #union(read: (informer: Informer<T>) => T[]): T[] {
    if (this.informers.length === 1 && this.informers[0]) return read(this.informers[0]);
    const seen = new Map<string, T>();
    for (const informer of this.informers) {
      for (const obj of read(informer)) {
        const key = objectKey(obj);
        if (!seen.has(key)) seen.set(key, obj);
      }
    }
    return [...seen.values()];
  }
}

export interface SecretInformersOptions
  extends Omit<InformerOptions<V1Secret>, 'path' | 'labelSelector' | 'fieldSelector' | 'name'> {
  /** Namespaces whose Secrets may be credential sources; each gets its own informer. */
  sourceNamespaces: readonly string[];
  /** Selects the Secrets the operator writes (default: managed-by=regcred-operator). */
  managedSelector?: string;
  /** How the cluster-wide informer of managed Secrets keeps them (default: `transform`). */
  managedTransform?: (secret: V1Secret) => V1Secret;
  /**
   * Its LIST page size where the API server refuses a watch-list: managed Secrets may be up to
   * 1 MiB each, so pages stay small.
   */
  managedPageSize?: number;
}

/**
 * Managed Secrets per LIST page at most (about 30 MiB of JSON if all 25 are 1 MiB spoofs);
 * pages are sized by weight below that (listAll), so small Secrets come 25 at a time. Only
 * where the API server refuses a watch-list: a watch-list streams one Secret per event, and
 * in pages of 25 the server's watch cache walks every Secret of the cluster after the continue
 * key for each page (2,000 managed among 102,000 Secrets: 81 pages, 2.3-3.7 s of API server
 * CPU, growing with pages × Secrets; as a watch-list 0.13-0.2 s).
 */
const MANAGED_PAGE_SIZE = 25;

/** What a Secret weighs in a LIST response: its data, base64 as sent. */
export function secretWeight(secret: V1Secret): number {
  let bytes = 512;
  for (const value of Object.values(secret.data ?? {})) bytes += value.length;
  return bytes;
}

export function createSecretInformers(
  kc: KubeConfig,
  opts: SecretInformersOptions,
): InformerUnion<V1Secret> {
  const { sourceNamespaces, managedSelector, managedTransform, managedPageSize, ...common } = opts;
  const scopes = new Map<Informer<V1Secret>, string>();
  const informers = [...new Set(sourceNamespaces)].map((namespace) => {
    const informer = new Informer<V1Secret>(kc, {
      ...common,
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
      name: `secrets/${namespace}`,
    });
    scopes.set(informer, namespace);
    return informer;
  });
  informers.push(
    new Informer<V1Secret>(kc, {
      ...common,
      path: '/api/v1/secrets',
      labelSelector: managedSelector ?? `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      // Only the type we write: an Opaque Secret with our labels is never ours to cache.
      fieldSelector: `type=${DOCKER_CONFIG_JSON_TYPE}`,
      ...(managedTransform ? { transform: managedTransform } : {}),
      pageSize: managedPageSize ?? MANAGED_PAGE_SIZE,
      weigh: secretWeight,
      name: 'secrets/managed',
    }),
  );
  return new InformerUnion(informers, scopes);
}

// The informer caches the controller reads: RegistryCredentials, Namespaces (metadata only),
// ServiceAccounts, managed Secrets and the source namespaces' Secrets. Reads go through the
// write-through overlays, so a reconcile sees its own writes before their watch events.
import type { KubeConfig, V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import type { Observable } from 'rxjs';
import {
  ADOPT_ANNOTATION,
  CREDENTIAL_LABEL,
  GROUP,
  MANAGED_BY_LABEL,
  PLURAL,
  type RegistryCredential,
  VERSION,
} from '../api/types.ts';
import type { ClusterView } from '../controller/cluster-view.ts';
import { DATA_DIGEST_KEY, dataDigest } from '../controller/desired.ts';
import { managedOwner } from '../controller/ownership.ts';
import { type NamespaceInfo, namespaceInfo } from '../controller/selection.ts';
import type { Logger } from '../observability/logger.ts';
import { Informer, type InformerEvent, type InformerHealth } from './informer.ts';
import { NamedSecrets } from './named-secrets.ts';
import { createSecretInformers, type InformerUnion } from './secret-informers.ts';
import { SharedValues } from './shared-values.ts';
import { overlayKey, WrittenOverlay } from './written-overlay.ts';

function stripNamespace(ns: V1Namespace): V1Namespace {
  return {
    metadata: {
      name: ns.metadata?.name,
      resourceVersion: ns.metadata?.resourceVersion,
      labels: ns.metadata?.labels,
      annotations: ns.metadata?.annotations,
      deletionTimestamp: ns.metadata?.deletionTimestamp,
    },
    status: { phase: ns.status?.phase },
  };
}

export function stripServiceAccount(sa: V1ServiceAccount, shared: SharedValues): V1ServiceAccount {
  // The whole object but managedFields: our writes are PUTs of the cached object, and a
  // field left out here would be erased on the server (automountServiceAccountToken, secrets).
  // What ServiceAccounts of many namespaces share is kept once (SharedValues): our entries and
  // their record are the same in every namespace a credential selects.
  const { managedFields: _m, ...metadata } = sa.metadata ?? {};
  metadata.name = shared.string(metadata.name);
  metadata.namespace = shared.string(metadata.namespace);
  if (metadata.labels) metadata.labels = shared.json(metadata.labels);
  if (metadata.annotations) metadata.annotations = shared.json(metadata.annotations);
  const out: V1ServiceAccount = { ...sa, apiVersion: 'v1', kind: 'ServiceAccount', metadata };
  if (sa.imagePullSecrets) out.imagePullSecrets = shared.json(sa.imagePullSecrets);
  if (sa.secrets) out.secrets = shared.json(sa.secrets);
  return out;
}

function stripSecret(secret: V1Secret): V1Secret {
  const { managedFields: _m, ...metadata } = secret.metadata ?? {};
  return { ...secret, metadata };
}

/** Metadata larger than this (serialised) is trimmed in the cache to what decisions read. */
export const MAX_CACHED_METADATA_BYTES = 16 * 1024;

/**
 * Managed Secrets live in tenant namespaces, where anyone with `edit` can make any number of
 * 1 MiB Secrets carrying our labels: the cache keeps a digest of the data, never the bytes, and
 * trims oversized metadata (a write to a trimmed Secret reads it first: `isComplete`).
 */
export function compactManagedSecret(
  secret: V1Secret,
  trimmed: WeakSet<V1Secret>,
  shared: SharedValues,
): V1Secret {
  const { managedFields: _m, ...metadata } = secret.metadata ?? {};
  // What a credential's Secrets share is kept once (SharedValues): ~1 KB per cached Secret
  // before, ~0.5 KB after.
  metadata.name = shared.string(metadata.name);
  metadata.namespace = shared.string(metadata.namespace);
  if (metadata.labels) metadata.labels = shared.json(metadata.labels);
  if (metadata.annotations) metadata.annotations = shared.json(metadata.annotations);
  if (metadata.ownerReferences) metadata.ownerReferences = shared.json(metadata.ownerReferences);
  const compact: V1Secret = {
    ...secret,
    apiVersion: shared.string(secret.apiVersion),
    kind: shared.string(secret.kind),
    type: shared.string(secret.type),
    metadata,
    data: shared.json({ [DATA_DIGEST_KEY]: dataDigest(secret.data) }),
  };
  delete compact.stringData;
  if (JSON.stringify(metadata).length <= MAX_CACHED_METADATA_BYTES) return compact;
  const adopt = metadata.annotations?.[ADOPT_ANNOTATION];
  compact.metadata = {
    name: metadata.name,
    namespace: metadata.namespace,
    uid: metadata.uid,
    resourceVersion: metadata.resourceVersion,
    labels: Object.fromEntries(
      [MANAGED_BY_LABEL, CREDENTIAL_LABEL]
        .filter((key) => metadata.labels?.[key] !== undefined)
        .map((key) => [key, metadata.labels?.[key] ?? '']),
    ),
    ...(adopt !== undefined ? { annotations: { [ADOPT_ANNOTATION]: adopt } } : {}),
    ownerReferences: (metadata.ownerReferences ?? [])
      .filter((ref) => ref.controller === true)
      .slice(0, 1),
  };
  trimmed.add(compact);
  return compact;
}

export interface ClusterCachesOptions {
  /** Namespaces whose Secrets may be credential sources. */
  sourceNamespaces: readonly string[];
  log: Logger;
  /** A watch failing this long makes the cache unhealthy. */
  unhealthyAfterMs: number;
  /** Every informer's resync period (InformerOptions.resyncIntervalMs; default 10 min, 0 off). */
  resyncIntervalMs?: number;
}

export class ClusterCaches implements ClusterView {
  readonly credentialEvents$: Observable<InformerEvent<RegistryCredential>>;
  readonly namespaceEvents$: Observable<InformerEvent<V1Namespace>>;
  readonly serviceAccountEvents$: Observable<InformerEvent<V1ServiceAccount>>;
  readonly secretEvents$: Observable<InformerEvent<V1Secret>>;
  /** Secrets under a name some credential writes, that are not ours (conflicts, hand-overs). */
  readonly namedSecretEvents$: Observable<InformerEvent<V1Secret>>;
  private readonly named: NamedSecrets;
  private readonly credentialInformer: Informer<RegistryCredential>;
  private readonly namespaceInformer: Informer<V1Namespace>;
  private readonly serviceAccountInformer: Informer<V1ServiceAccount>;
  /** Managed Secrets cluster-wide (by label) and every Secret of the source namespaces. */
  private readonly secrets: InformerUnion<V1Secret>;
  private readonly sourceNamespaces: ReadonlySet<string>;
  private readonly secretOverlay = new WrittenOverlay<V1Secret>();
  private readonly saOverlay = new WrittenOverlay<V1ServiceAccount>();
  private readonly credOverlay = new WrittenOverlay<RegistryCredential>();
  /** Cached managed Secrets whose metadata was trimmed (compactManagedSecret). */
  private readonly trimmed = new WeakSet<V1Secret>();
  /** What the cached managed Secrets share, kept once (compactManagedSecret). */
  private readonly shared = new SharedValues();
  /**
   * The cached managed Secrets' keys by owning credential, kept from the Secret events: a
   * credential's Secrets without walking every managed Secret of the cluster (50 credentials
   * finishing one batched reconcile walked 75,000 Secrets each, synchronously: the event loop
   * stood still for seconds, issue #20 scenario 2).
   */
  private readonly secretsByOwner = new Map<string, Set<string>>();
  private readonly ownerOfSecret = new Map<string, string>();

  constructor(kc: KubeConfig, options: ClusterCachesOptions) {
    const logger = options.log.child({ component: 'informer' });
    const unhealthyAfterMs = options.unhealthyAfterMs;
    const resync =
      options.resyncIntervalMs !== undefined ? { resyncIntervalMs: options.resyncIntervalMs } : {};
    this.credentialInformer = new Informer<RegistryCredential>(kc, {
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      logger,
      unhealthyAfterMs,
      ...resync,
    });
    this.namespaceInformer = new Informer<V1Namespace>(kc, {
      path: '/api/v1/namespaces',
      transform: stripNamespace,
      logger,
      unhealthyAfterMs,
      ...resync,
    });
    this.serviceAccountInformer = new Informer<V1ServiceAccount>(kc, {
      path: '/api/v1/serviceaccounts',
      transform: (sa) => stripServiceAccount(sa, this.shared),
      logger,
      unhealthyAfterMs,
      ...resync,
    });
    this.sourceNamespaces = new Set(options.sourceNamespaces);
    this.secrets = createSecretInformers(kc, {
      sourceNamespaces: options.sourceNamespaces,
      transform: stripSecret,
      managedTransform: (secret) => compactManagedSecret(secret, this.trimmed, this.shared),
      logger,
      unhealthyAfterMs,
      ...resync,
    });
    this.named = new NamedSecrets(kc, {
      logger,
      unhealthyAfterMs,
      ...resync,
      transform: (secret) => compactManagedSecret(secret, this.trimmed, this.shared),
    });
    this.namedSecretEvents$ = this.named.events$;
    this.credentialEvents$ = this.credentialInformer.events$;
    this.namespaceEvents$ = this.namespaceInformer.events$;
    this.serviceAccountEvents$ = this.serviceAccountInformer.events$;
    this.secretEvents$ = this.secrets.events$;
    // Subscribed before any informer starts: every event, the initial list's included.
    this.secrets.events$.subscribe((e) => this.indexOwner(overlayKey(e.object)));
  }

  /** Files `key` under the owner of what the Secret caches hold for it now (see secretsByOwner). */
  private indexOwner(key: string): void {
    const cached = this.secrets.get(key);
    const owner = cached ? managedOwner(cached) : undefined;
    const previous = this.ownerOfSecret.get(key);
    if (previous === owner) return;
    if (previous !== undefined) {
      const keys = this.secretsByOwner.get(previous);
      keys?.delete(key);
      if (keys?.size === 0) this.secretsByOwner.delete(previous);
    }
    if (owner === undefined) {
      this.ownerOfSecret.delete(key);
      return;
    }
    this.ownerOfSecret.set(key, owner);
    const keys = this.secretsByOwner.get(owner);
    if (keys) keys.add(key);
    else this.secretsByOwner.set(owner, new Set([key]));
  }

  private get all(): Array<{
    start(): void;
    stop(): Promise<void>;
    synced: Promise<void>;
    health(): InformerHealth;
  }> {
    return [
      this.credentialInformer,
      this.namespaceInformer,
      this.serviceAccountInformer,
      this.secrets,
    ];
  }

  start(): void {
    for (const informer of this.all) informer.start();
  }

  hasSynced(): boolean {
    return this.all.every((informer) => informer.health().synced);
  }

  /** Resolves once every informer's first list has landed. */
  async synced(): Promise<void> {
    await Promise.all(this.all.map((informer) => informer.synced));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.all.map((informer) => informer.stop()), this.named.stop()]);
  }

  /** Watches the Secrets under exactly these names that are not ours (see NamedSecrets). */
  watchSecretNames(names: ReadonlySet<string>): void {
    this.named.watch(names);
  }

  health(): InformerHealth[] {
    return this.all.map((informer) => informer.health());
  }

  // ---- echoes: our own writes coming back through the watches ----

  /** True when the event is our own write (or delete) of this Secret coming back. */
  observedSecret(e: InformerEvent<V1Secret>): boolean {
    return this.secretOverlay.observed(e.object, e.type);
  }
  observedServiceAccount(e: InformerEvent<V1ServiceAccount>): boolean {
    return this.saOverlay.observed(e.object, e.type);
  }
  observedCredential(e: InformerEvent<RegistryCredential>): boolean {
    return this.credOverlay.observed(e.object, e.type);
  }

  // ---- the raw caches, for the event mapping ----

  cachedCredentials(): RegistryCredential[] {
    return this.credentialInformer.list();
  }
  cachedCredential(name: string): RegistryCredential | undefined {
    return this.credentialInformer.get(name);
  }
  cachedNamespace(name: string): V1Namespace | undefined {
    return this.namespaceInformer.get(name);
  }
  cachedSecretsIn(namespace: string): V1Secret[] {
    return this.secrets.byNamespace(namespace);
  }
  isSourceNamespace(namespace: string): boolean {
    return this.sourceNamespaces.has(namespace);
  }

  // ---- ClusterView: reads from the caches, with our writes on top ----

  credential(name: string): RegistryCredential | undefined {
    return this.credOverlay.pick(name, this.credentialInformer.get(name));
  }

  *credentials(): Iterable<RegistryCredential> {
    for (const cached of this.credentialInformer.list()) {
      const cred = this.credOverlay.pick(overlayKey(cached), cached);
      if (cred) yield cred;
    }
  }

  *namespaces(): Iterable<NamespaceInfo> {
    for (const ns of this.namespaceInformer.list()) yield namespaceInfo(ns);
  }

  namespace(name: string): NamespaceInfo | undefined {
    const ns = this.namespaceInformer.get(name);
    return ns ? namespaceInfo(ns) : undefined;
  }

  serviceAccounts(namespace: string): V1ServiceAccount[] {
    return this.serviceAccountInformer
      .byNamespace(namespace)
      .map((sa) => this.saOverlay.pick(overlayKey(sa), sa))
      .filter((sa): sa is V1ServiceAccount => sa !== undefined);
  }

  managedSecret(namespace: string, name: string): V1Secret | undefined {
    const key = `${namespace}/${name}`;
    return this.secretOverlay.pick(key, this.secrets.get(key), this.secrets.seenThrough(namespace));
  }

  /**
   * The cached managed Secrets that, with our writes on top, `credential` owns: those the cache
   * files under it, and those our pending writes gave it.
   */
  managedSecretsOf(credential: string): V1Secret[] {
    const keys = new Set(this.secretsByOwner.get(credential));
    for (const [key, written] of this.secretOverlay.entries()) {
      if (written && managedOwner(written) === credential) keys.add(key);
    }
    const owned: V1Secret[] = [];
    for (const key of keys) {
      const cached = this.secrets.get(key);
      if (!cached) continue;
      const secret = this.secretOverlay.pick(key, cached);
      if (secret && managedOwner(secret) === credential) owned.push(secret);
    }
    return owned;
  }

  sourceSecret(namespace: string, name: string): V1Secret | undefined {
    if (!this.sourceNamespaces.has(namespace)) return undefined;
    const key = `${namespace}/${name}`;
    return this.secretOverlay.pick(key, this.secrets.get(key), this.secrets.seenThrough(namespace));
  }

  unmanagedSecret(namespace: string, name: string): V1Secret | null | undefined {
    return this.named.get(namespace, name);
  }

  isComplete(secret: V1Secret): boolean {
    return !this.trimmed.has(secret);
  }

  wroteSecret(secret: V1Secret): void {
    this.secretOverlay.put(stripSecret(secret));
  }
  deletedSecret(namespace: string, name: string): void {
    this.secretOverlay.remove(`${namespace}/${name}`);
  }
  wroteServiceAccount(sa: V1ServiceAccount): void {
    this.saOverlay.put(stripServiceAccount(sa, this.shared));
  }
  wroteCredential(cred: RegistryCredential): void {
    this.credOverlay.put(cred);
  }
}

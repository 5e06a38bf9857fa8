// Which work an informer event makes: controller-runtime's EnqueueRequestsFromMapFunc and
// predicates in one place. Pure: given an event and what the caches hold, it returns the keys
// to queue; the wiring puts them on the queues. The rules and their measurements are in
// docs/adr/0001-informers-and-work-queue.md (addendum).
import type { V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, type RegistryCredential } from '../api/types.ts';
import { referencedSecrets } from '../credentials/resolve.ts';
import type { InformerEvent } from '../kube/informer.ts';
import { effectiveSecretName } from './desired.ts';
import { managedOwner } from './ownership.ts';
import { entryEdit, recordedEntries } from './pull-secret-entries.ts';
import {
  type NamespaceInfo,
  namespaceInfo,
  namespaceSelection,
  selectedServiceAccounts,
} from './selection.ts';

/** Work an event asks for. */
export type WorkItem =
  /** A full reconcile of the credential (targets, cleanup, status). */
  | { queue: 'full'; credential: string }
  /**
   * One namespace of the credential, on the fast path. Urgent unless the namespace is brand
   * new: a ServiceAccount without our entry can be running Pods now, while a namespace just
   * created has no ServiceAccount to use yet.
   */
  | { queue: 'namespace'; credential: string; namespace: string; urgent: boolean }
  /** A full reconcile that only has counts to update: coalesced over a short delay. */
  | { queue: 'status'; credential: string };

/** What the mapping reads: the caches as they are, without our write-through overlay. */
export interface MappingView {
  /** Whether this process leads: before that, the fast path and status timers wait. */
  readonly leading: boolean;
  operatorNamespace: string;
  credentials(): readonly RegistryCredential[];
  credential(name: string): RegistryCredential | undefined;
  namespace(name: string): V1Namespace | undefined;
  /** The cached Secrets of a namespace (managed ones, and sources where it is a source namespace). */
  secretsIn(namespace: string): readonly V1Secret[];
  isSourceNamespace(namespace: string): boolean;
  /** True when our managed Secret holds what its credential's latest reconcile wrote. */
  upToDate(secret: V1Secret, credential: string): boolean;
  /**
   * True when a full reconcile of the credential, queued or running, will still read the
   * namespace from the caches before writing it (it writes it there anyway).
   */
  fullReconcileCovers?(credential: string, namespace: string): boolean;
}

export class EventMapping {
  private readonly view: MappingView;
  /** Each cached RegistryCredential's namespace selector (an update brings a new object). */
  private readonly selectors = new WeakMap<
    RegistryCredential,
    ((ns: NamespaceInfo) => boolean) | null
  >();

  constructor(view: MappingView) {
    this.view = view;
  }

  /**
   * `echo`: the event is our own status or finalizer write coming back. It needs no reconcile
   * (each one made a second full reconcile of every namespace that found nothing to do) unless
   * the object carries a generation the status has not observed: a spec change that landed
   * before our write, whose own event a relist may have folded into ours.
   */
  credential(e: InformerEvent<RegistryCredential>, echo: boolean): WorkItem[] {
    const cred = e.object;
    const name = cred.metadata?.name;
    if (!name) return [];
    const settled =
      !cred.metadata?.deletionTimestamp &&
      cred.status?.observedGeneration !== undefined &&
      cred.status.observedGeneration === cred.metadata?.generation;
    return echo && settled ? [] : [full(name)];
  }

  namespace(e: InformerEvent<V1Namespace>): WorkItem[] {
    const work = new WorkList(this.view.leading);
    const now = namespaceInfo(e.object);
    const selecting = new Set(e.type === 'delete' ? [] : this.credentialsSelecting(now));
    if (e.type === 'update' && e.old === e.object) {
      // A resync replays every cached namespace: one coalesced full reconcile per credential
      // re-checks them all from the cache, not one fast-path sync per namespace.
      for (const name of selecting) work.statusSoon(name);
      return work.items;
    }
    for (const name of selecting) work.syncNamespaceSoon(name, now.name, e.type !== 'add');
    // Credentials that selected it before: when it is relabelled out, they remove what is
    // theirs; when it terminates, only their status changes (its Secrets and ServiceAccounts
    // go with it), so deleting many namespaces makes a few full reconciles.
    const before = e.type === 'delete' ? now : e.old ? namespaceInfo(e.old) : undefined;
    const going = e.type === 'delete' || now.terminating;
    for (const name of this.credentialsSelecting(before)) {
      if (selecting.has(name)) continue;
      if (going) work.statusSoon(name);
      else work.full(name);
    }
    // A namespace that leaves every selector still holds our Secrets: their owners clean up
    // (unless it is going, and takes them along).
    if (e.type === 'delete') return work.items;
    for (const secret of this.view.secretsIn(now.name)) {
      const owner = managedOwner(secret);
      if (!owner || selecting.has(owner)) continue;
      if (going) work.statusSoon(owner);
      else work.full(owner);
    }
    return work.items;
  }

  serviceAccount(e: InformerEvent<V1ServiceAccount>): WorkItem[] {
    const work = new WorkList(this.view.leading);
    const ns = e.object.metadata?.namespace ?? '';
    const selecting = new Set(this.credentialsSelecting(this.namespaceInfo(ns)));
    const owners = new Set<string>();
    for (const secret of this.view.secretsIn(ns)) {
      const owner = managedOwner(secret);
      if (owner && !selecting.has(owner)) owners.add(owner);
    }
    if (e.type === 'add') {
      // The fast path gives it our entry (status does not count ServiceAccounts).
      for (const name of selecting) work.namespace(name, ns, true);
      for (const name of owners) work.full(name);
      return work.items;
    }
    if (e.type === 'delete') return work.items; // our entry went with it
    // Work only for a RegistryCredential this ServiceAccount now disagrees with: its entry
    // missing, doubled or unrecorded where it belongs, or recorded where it does not. Our own writes, and
    // every other credential's, leave it as it wants it; queueing each credential of the
    // namespace on every write made a second credential's fan-out over 1000 namespaces
    // reconcile the first 852 times (11 s of CPU; 10.6 s instead of 3.2 s).
    // Nor for one whose full reconcile will write this namespace from the caches anyway:
    // credentials fanning out together wrote each ServiceAccount's entries one credential
    // at a time, and each write queued the fast path of every credential still missing
    // there (quadratic per namespace: 501,762 reconciles for 50 credentials × 3,000).
    const saName = e.object.metadata?.name ?? '';
    for (const name of selecting) {
      if (this.view.fullReconcileCovers?.(name, ns)) continue;
      const cred = this.view.credential(name);
      if (!cred) continue;
      const selected = selectedServiceAccounts(cred.spec, [saName]).length === 1;
      if (entryEdit(e.object, effectiveSecretName(cred), selected) !== undefined) {
        work.namespace(name, ns, true);
      }
    }
    // A namespace its credential no longer selects (or a credential gone): the full reconcile
    // removes what is still ours.
    for (const name of owners) {
      const cred = this.view.credential(name);
      if (!cred || recordedEntries(e.object).has(effectiveSecretName(cred))) work.full(name);
    }
    return work.items;
  }

  /** `echo`: the event is our own write (or delete) coming back. */
  secret(e: InformerEvent<V1Secret>, echo: boolean): WorkItem[] {
    const work = new WorkList(this.view.leading);
    const ns = e.object.metadata?.namespace ?? '';
    const owner = managedOwner(e.object);
    const oldOwner = e.old ? managedOwner(e.old) : undefined;
    // Our own writes coming back need nothing where the credential still writes this Secret
    // (each one used to queue a full reconcile of every namespace: an onboarding burst ran
    // them back to back). Where it no longer selects the namespace (relabelled out while the
    // write was in flight) or writes under another name now, the full reconcile removes it;
    // our own delete coming back needs nothing at all.
    if (owner && !(echo && e.type === 'delete')) {
      const info = this.namespaceInfo(ns);
      const cred = this.view.credential(owner);
      if (!info || info.terminating) {
        work.statusSoon(owner); // going with its namespace: only the counts change
      } else if (
        !this.view.leading ||
        !cred ||
        effectiveSecretName(cred) !== e.object.metadata?.name ||
        !this.selects(cred, info)
      ) {
        work.full(owner);
      } else if (
        !echo &&
        (e.type === 'delete' || !this.view.upToDate(e.object, owner)) &&
        !this.view.fullReconcileCovers?.(owner, ns)
      ) {
        // Edited or deleted by someone else where its credential still writes it: that one
        // namespace is restored. Not where a full reconcile of the credential, queued or
        // running, will write it from the caches anyway: an informer resync during a rotation
        // replays every Secret not rotated yet, and each queued an urgent sync the fan-out
        // was about to make (a burst of new namespaces waited behind thousands of them).
        work.namespace(owner, ns, true);
      }
    }
    // Relabelled to another credential (adopted, or by hand) or unlabelled: the one that had
    // it re-checks (its status, and whether it wants the name back).
    if (oldOwner && oldOwner !== owner) work.full(oldOwner);
    if (e.type === 'delete' && e.object.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE) {
      // The name is free again: a RegistryCredential that lost it to an older one takes it
      // now rather than on its next conflict retry.
      const secretName = e.object.metadata.name;
      for (const name of this.credentialsSelecting(this.namespaceInfo(ns))) {
        const cred = this.view.credential(name);
        if (cred && effectiveSecretName(cred) === secretName) work.full(name);
      }
    }
    if (!this.view.isSourceNamespace(ns)) return work.items;
    const name = e.object.metadata?.name;
    for (const cred of this.view.credentials()) {
      if (
        referencedSecrets(cred, this.view.operatorNamespace).some(
          (r) => r.namespace === ns && r.name === name,
        )
      ) {
        work.full(cred.metadata.name ?? '');
      }
    }
    return work.items;
  }

  /**
   * A Secret that is not ours under a name some credential writes: created (a conflict now),
   * deleted (the name is free), annotated for adoption. The credentials that write that name
   * into its namespace decide at once rather than on their next conflict recheck.
   */
  namedSecret(e: InformerEvent<V1Secret>): WorkItem[] {
    const work = new WorkList(this.view.leading);
    const name = e.object.metadata?.name;
    for (const credential of this.credentialsSelecting(
      this.namespaceInfo(e.object.metadata?.namespace ?? ''),
    )) {
      const cred = this.view.credential(credential);
      if (cred && effectiveSecretName(cred) === name) work.full(credential);
    }
    return work.items;
  }

  /**
   * The credentials whose selector picks `ns`. Runs on every Namespace and ServiceAccount
   * event, so each credential's selector is built once per cached object, not per event.
   */
  credentialsSelecting(ns: NamespaceInfo | undefined): string[] {
    if (!ns) return [];
    const names: string[] = [];
    for (const cred of this.view.credentials()) {
      if (this.selects(cred, ns)) names.push(cred.metadata.name ?? '');
    }
    return names;
  }

  /**
   * Whether `cred`'s selector picks `ns`. The echo of each Secret the operator writes asks this
   * of its one owner: with 50 credentials, asking all of them cost a rotation 4 % of its CPU.
   */
  private selects(cred: RegistryCredential, ns: NamespaceInfo): boolean {
    let selects = this.selectors.get(cred);
    if (selects === undefined) {
      try {
        selects = namespaceSelection(cred.spec);
      } catch {
        selects = null; // an invalid selector selects nothing; its reconcile says why
      }
      this.selectors.set(cred, selects);
    }
    return selects?.(ns) ?? false;
  }

  private namespaceInfo(name: string): NamespaceInfo | undefined {
    const ns = this.view.namespace(name);
    return ns ? namespaceInfo(ns) : undefined;
  }
}

function full(credential: string): WorkItem {
  return { queue: 'full', credential };
}

/**
 * The items one event makes. The fast path and status timers exist only while leading:
 * before that (the initial list, or a standby's whole wait) they would only repeat the full
 * reconcile queued for every credential when leadership starts (a restart at 3000 namespaces
 * and two credentials spent 30 s of CPU on 6000 such keys).
 */
class WorkList {
  readonly items: WorkItem[] = [];
  private readonly leading: boolean;

  constructor(leading: boolean) {
    this.leading = leading;
  }

  full(credential: string): void {
    if (credential) this.items.push(full(credential));
  }

  namespace(credential: string, namespace: string, urgent: boolean): void {
    if (this.leading) this.items.push({ queue: 'namespace', credential, namespace, urgent });
  }

  statusSoon(credential: string): void {
    if (this.leading) this.items.push({ queue: 'status', credential });
  }

  /** Synced at once on its own key, and counted in the status by a coalesced full reconcile. */
  syncNamespaceSoon(credential: string, namespace: string, urgent: boolean): void {
    this.namespace(credential, namespace, urgent);
    this.statusSoon(credential);
  }
}

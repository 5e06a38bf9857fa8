// Taking back what we wrote: Secrets in namespaces that left the targets or under an old
// secretName, our entries on ServiceAccounts, and everything when the RegistryCredential is
// deleted (the finalizer). Only what is ours is ever touched.
import type { V1Secret } from '@kubernetes/client-node';
import PQueue from 'p-queue';
import { CLEANUP_FINALIZER, type RegistryCredential } from '../api/types.ts';
import { KubeApiError } from '../kube/rest.ts';
import { updateServiceAccount } from '../kube/service-accounts.ts';
import type { Logger } from '../observability/logger.ts';
import { effectiveSecretName } from './desired.ts';
import { isProvablyOurs, managedOwner } from './ownership.ts';
import { recordedEntries, withoutOurEntry } from './pull-secret-entries.ts';
import {
  noWrites,
  type ReconcileContext,
  RetryableSyncError,
  type Writes,
} from './reconcile-context.ts';
import { type NamespaceInfo, namespaceSelection } from './selection.ts';

/** What the credential still writes, for deciding which of its Secrets are stale. */
export interface LiveSelection {
  /** The credential's selection, applied to the namespace cache as it is now. */
  selects: (ns: NamespaceInfo) => boolean;
  secretName: string;
  /** Whether a targeted namespace holds our Secret under the current name. */
  replaced: (ns: string) => boolean;
}

/**
 * Whether one of our Secrets should no longer exist: every one when the credential is gone
 * (`live` undefined); otherwise one in a namespace that left the targets, or under an old
 * secretName where the current one is in place (make before break). Never one in a
 * terminating namespace: the namespace controller removes everything there.
 */
export function isStale(
  secret: V1Secret,
  namespace: NamespaceInfo | undefined,
  live: LiveSelection | undefined,
): boolean {
  if (namespace?.terminating) return false;
  if (!live || !namespace || !live.selects(namespace)) return true;
  return secret.metadata?.name !== live.secretName && live.replaced(namespace.name);
}

/** How many ignored Secrets are remembered, to log each once (then the memory starts over). */
const MAX_IGNORED_REMEMBERED = 10_000;

export class Cleanup {
  private readonly ctx: ReconcileContext;
  private readonly ignored = new Set<string>();

  constructor(ctx: ReconcileContext) {
    this.ctx = ctx;
  }

  /**
   * Deletes our Secrets that should no longer exist (isStale) and exactly our recorded entries
   * pointing at them. Only Secrets provably written for `cred` (isProvablyOurs) are deleted.
   * Returns the failures, which are retried.
   */
  async removeStale(
    cred: RegistryCredential,
    live: LiveSelection | undefined,
    writes: Writes = noWrites(),
  ): Promise<string[]> {
    const { view } = this.ctx;
    const credName = cred.metadata.name ?? '';
    // Selection as of now, not as of the reconcile's start: a namespace that arrived during
    // the fan-out already has its Secret from the fast path.
    const stale = view.managedSecretsOf(credName).filter((secret) => {
      if (!isStale(secret, view.namespace(secret.metadata?.namespace ?? ''), live)) return false;
      if (isProvablyOurs(secret, cred)) return true;
      this.ignoredOnce(secret, credName);
      return false;
    });
    const errors: string[] = [];
    await this.forEachBounded(stale, async (secret) => {
      const ns = secret.metadata?.namespace ?? '';
      const name = secret.metadata?.name ?? '';
      try {
        writes.serviceAccounts += await this.removeEntries(ns, name);
        await this.ctx.api.deleteSecret(ns, name, secret.metadata?.uid);
        view.deletedSecret(ns, name);
        writes.deleted += 1;
      } catch (error) {
        errors.push(this.failed(credName, ns, error));
      }
    });
    return errors;
  }

  /**
   * Recorded entries that no RegistryCredential claims any more: their credential was deleted
   * without our finalizer (removed by hand while we were down; garbage collection took the
   * Secrets), or renamed its Secret after someone deleted the old one. An entry is left where
   * a Secret of its name still exists and is not one of ours for a credential that is gone.
   */
  async sweepOrphanedEntries(writes: Writes = noWrites()): Promise<string[]> {
    const { view } = this.ctx;
    const claimants = [...view.credentials()].map((cred) => {
      let selects: (ns: NamespaceInfo) => boolean;
      try {
        selects = namespaceSelection(cred.spec);
      } catch {
        selects = () => true; // an invalid spec keeps what it wrote: it claims everywhere
      }
      return { secretName: effectiveSecretName(cred), selects };
    });
    const errors: string[] = [];
    for (const ns of view.namespaces()) {
      if (ns.terminating) continue;
      const claimed = new Set(claimants.filter((c) => c.selects(ns)).map((c) => c.secretName));
      const orphaned = new Set<string>();
      for (const sa of view.serviceAccounts(ns.name)) {
        for (const name of recordedEntries(sa)) if (!claimed.has(name)) orphaned.add(name);
      }
      for (const name of orphaned) {
        try {
          const managed = view.managedSecret(ns.name, name);
          const owner = managed ? managedOwner(managed) : undefined;
          // Another live credential's Secret, in a namespace it no longer selects: its own
          // reconcile removes Secret and entry together.
          if (owner && view.credential(owner)) continue;
          if (!managed && (await this.someoneHas(ns.name, name))) continue;
          writes.serviceAccounts += await this.removeEntries(ns.name, name);
        } catch (error) {
          errors.push(this.failed('(orphaned entries)', ns.name, error));
        }
      }
    }
    if (writes.serviceAccounts > 0) {
      this.ctx.log.info('removed orphaned entries', { serviceAccounts: writes.serviceAccounts });
    }
    return errors;
  }

  /**
   * Our entries where our Secret is already gone (another client deleted it) and the namespace
   * is no longer a target, or the credential is being deleted: removeStale starts from our
   * Secrets and cannot find these. Only entries we recorded are removed, and only where no
   * Secret of that name exists (someone else's, or another credential's, is left alone).
   */
  async removeDanglingEntries(
    credName: string,
    selects: (ns: NamespaceInfo) => boolean,
    secretName: string,
    writes: Writes,
  ): Promise<string[]> {
    const { view } = this.ctx;
    const errors: string[] = [];
    for (const ns of view.namespaces()) {
      if (ns.terminating || selects(ns)) continue;
      const listing = view
        .serviceAccounts(ns.name)
        .some((sa) => recordedEntries(sa).has(secretName));
      if (!listing || view.managedSecret(ns.name, secretName)) continue;
      try {
        if (await this.someoneHas(ns.name, secretName)) continue;
        writes.serviceAccounts += await this.removeEntries(ns.name, secretName);
      } catch (error) {
        errors.push(this.failed(credName, ns.name, error));
      }
    }
    return errors;
  }

  /** Whether a Secret that is not ours holds `name` in `namespace` (the cache, else a GET). */
  private async someoneHas(namespace: string, name: string): Promise<boolean> {
    const known = this.ctx.view.unmanagedSecret(namespace, name);
    if (known !== undefined) return known !== null;
    return (await this.ctx.api.readSecret(namespace, name)) !== undefined;
  }

  /** Removes our recorded entry from every ServiceAccount in `ns`; returns the writes. */
  private async removeEntries(ns: string, secretName: string): Promise<number> {
    let written = 0;
    for (const sa of this.ctx.view.serviceAccounts(ns)) {
      if (!recordedEntries(sa).has(secretName)) continue;
      const result = await updateServiceAccount(this.ctx.api, sa, (current) =>
        withoutOurEntry(current, secretName),
      );
      if (result.kind === 'written') {
        this.ctx.view.wroteServiceAccount(result.sa);
        written += 1;
      }
    }
    return written;
  }

  /** The cleanup finalizer: everything we wrote goes, then the finalizer. */
  async finalize(cred: RegistryCredential, log: Logger): Promise<void> {
    const finalizers = cred.metadata.finalizers ?? [];
    if (!finalizers.includes(CLEANUP_FINALIZER)) return;
    const name = cred.metadata.name ?? '';
    const writes = noWrites();
    const errors = [
      ...(await this.removeStale(cred, undefined, writes)),
      ...(await this.removeDanglingEntries(name, () => false, effectiveSecretName(cred), writes)),
    ];
    if (errors.length > 0) {
      await this.ctx.events.record(
        cred,
        'Warning',
        'CleanupFailed',
        `cleanup failed in ${errors.length} namespace(s); retrying`,
      );
      throw new RetryableSyncError(`cleanup of ${name} failed in ${errors.length} namespace(s)`);
    }
    try {
      await this.ctx.api.setCredentialFinalizers(
        cred,
        finalizers.filter((f) => f !== CLEANUP_FINALIZER),
      );
    } catch (error) {
      // Already gone: a replay of a finalize that completed, before the watch caught up.
      if (!(error instanceof KubeApiError && error.notFound)) throw error;
      return;
    }
    this.ctx.tokens.forget(cred.metadata.uid ?? name);
    log.info('cleaned up', { deleted: writes.deleted });
  }

  private async forEachBounded<T>(items: readonly T[], run: (item: T) => Promise<void>) {
    const queue = new PQueue({ concurrency: this.ctx.fanoutConcurrency });
    for (const item of items) void queue.add(() => run(item));
    await queue.onIdle();
  }

  /** A labelled Secret we cannot prove is ours: never deleted, said once at debug. */
  private ignoredOnce(secret: V1Secret, credName: string): void {
    const key = `${secret.metadata?.namespace}/${secret.metadata?.name}/${secret.metadata?.uid}`;
    if (this.ignored.has(key)) return;
    if (this.ignored.size >= MAX_IGNORED_REMEMBERED) this.ignored.clear();
    this.ignored.add(key);
    this.ctx.log.debug('ignoring a Secret labelled for this credential but not provably ours', {
      registryCredential: credName,
      namespace: secret.metadata?.namespace,
      secret: secret.metadata?.name,
    });
  }

  private failed(credName: string, namespace: string, error: unknown): string {
    const message = error instanceof Error ? error.message : String(error);
    this.ctx.log.warn('cleanup failed', {
      registryCredential: credName,
      namespace,
      error: message,
    });
    return `${namespace}: ${message}`;
  }
}

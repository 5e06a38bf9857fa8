// Taking back what we wrote: Secrets in namespaces that left the targets or under an old
// secretName, our entries on ServiceAccounts, and everything when the RegistryCredential is
// deleted (the finalizer). Only what is ours is ever touched.
import type { V1Secret } from '@kubernetes/client-node';
import PQueue from 'p-queue';
import { CLEANUP_FINALIZER, type RegistryCredential } from '../api/types.ts';
import { KubeApiError } from '../kube/rest.ts';
import { updateServiceAccount } from '../kube/service-accounts.ts';
import type { Logger } from '../observability/logger.ts';
import { effectiveSecretName, withoutPullSecretEntry } from './desired.ts';
import {
  noWrites,
  type ReconcileContext,
  RetryableSyncError,
  type Writes,
} from './reconcile-context.ts';
import type { NamespaceInfo } from './selection.ts';

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

export class Cleanup {
  private readonly ctx: ReconcileContext;

  constructor(ctx: ReconcileContext) {
    this.ctx = ctx;
  }

  /**
   * Deletes our Secrets that should no longer exist (isStale) and exactly our entries pointing
   * at them. Returns the failures, which are retried.
   */
  async removeStale(
    credName: string,
    live: LiveSelection | undefined,
    writes: Writes = noWrites(),
  ): Promise<string[]> {
    const { view } = this.ctx;
    // Selection as of now, not as of the reconcile's start: a namespace that arrived during
    // the fan-out already has its Secret from the fast path.
    const stale = view
      .managedSecretsOf(credName)
      .filter((secret) => isStale(secret, view.namespace(secret.metadata?.namespace ?? ''), live));
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
   * Our entries where our Secret is already gone (another client deleted it) and the namespace
   * is no longer a target, or the credential is being deleted: removeStale starts from our
   * Secrets and cannot find these. An entry naming a Secret that does not exist in its
   * namespace points at nothing, whoever wrote it; one naming a Secret that exists (someone
   * else's, or another credential's) is left alone.
   */
  async removeDanglingEntries(
    credName: string,
    selects: (ns: NamespaceInfo) => boolean,
    secretName: string,
    writes: Writes,
  ): Promise<string[]> {
    const { view, api } = this.ctx;
    const errors: string[] = [];
    for (const ns of view.namespaces()) {
      if (ns.terminating || selects(ns)) continue;
      const listing = view
        .serviceAccounts(ns.name)
        .some((sa) => (sa.imagePullSecrets ?? []).some((e) => e.name === secretName));
      if (!listing || view.managedSecret(ns.name, secretName)) continue;
      try {
        if (await api.readSecret(ns.name, secretName)) continue;
        writes.serviceAccounts += await this.removeEntries(ns.name, secretName);
      } catch (error) {
        errors.push(this.failed(credName, ns.name, error));
      }
    }
    return errors;
  }

  /** Removes our entry from every ServiceAccount in `ns` that has it; returns the writes. */
  private async removeEntries(ns: string, secretName: string): Promise<number> {
    let written = 0;
    for (const sa of this.ctx.view.serviceAccounts(ns)) {
      const result = await updateServiceAccount(this.ctx.api, sa, (current) => {
        const next = withoutPullSecretEntry(current.imagePullSecrets, secretName);
        return next === undefined ? undefined : { ...current, imagePullSecrets: next };
      });
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
      ...(await this.removeStale(name, undefined, writes)),
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

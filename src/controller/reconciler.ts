// The reconciler: read the caches, compute the desired state from scratch, write only the
// difference. A work item is a RegistryCredential name (everything it writes, and its status)
// or one of its namespaces (that namespace only); replaying either any number of times is
// harmless, and a reconcile that finds nothing to change writes nothing (status included).
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import PQueue from 'p-queue';
import { conditionTime, findCondition, setCondition } from '../api/conditions.ts';
import { parseDuration } from '../api/duration.ts';
import {
  CLEANUP_FINALIZER,
  type Condition,
  type ConditionReason,
  type FailedNamespace,
  MAX_FAILED_NAMESPACES,
  type RegistryCredential,
  type RegistryCredentialStatus,
} from '../api/types.ts';
import type { CloudEndpoints } from '../credentials/cloud/cloud-token.ts';
import {
  buildDockerConfigJson,
  type DockerAuthEntry,
  parseDockerConfigSecret,
} from '../credentials/dockerconfigjson.ts';
import { CredentialError } from '../credentials/errors.ts';
import {
  type ResolvedWithTokens,
  resolveCredentials,
  type SourcePolicy,
  type SourceSecrets,
} from '../credentials/resolve.ts';
import type { TokenCache } from '../credentials/token-cache.ts';
import { type KubeApi, KubeApiError } from '../kube/api.ts';
import type { EventRecorder } from '../kube/events.ts';
import type { Logger } from '../observability/logger.ts';
import { safeMessage } from '../observability/redact.ts';
import {
  classifySecret,
  desiredSecret,
  effectiveSecretName,
  mergeSecretForUpdate,
  olderCredentialWins,
  secretConflictMessage,
  secretNeedsUpdate,
  withoutPullSecretEntry,
  withPullSecretEntry,
} from './desired.ts';
import { type NamespaceInfo, namespaceSelection, selectedServiceAccounts } from './selection.ts';

/** What the reconciler reads: informer caches, never the API server. */
export interface ClusterView extends SourceSecrets {
  credential(name: string): RegistryCredential | undefined;
  namespaces(): Iterable<NamespaceInfo>;
  namespace(name: string): NamespaceInfo | undefined;
  serviceAccounts(namespace: string): V1ServiceAccount[];
  managedSecret(namespace: string, name: string): V1Secret | undefined;
  managedSecretsOf(credential: string): V1Secret[];
  /** Write-through: the caches hold what we just wrote until the watch delivers it. */
  wroteSecret(secret: V1Secret): void;
  deletedSecret(namespace: string, name: string): void;
  wroteServiceAccount(sa: V1ServiceAccount): void;
  wroteCredential(cred: RegistryCredential): void;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface NamespaceReconcileResult {
  /** The namespace needs what only the full reconcile does (status, cleanup, a decision). */
  fullReconcile?: boolean;
}

export interface ReconcilerOptions {
  view: ClusterView;
  api: KubeApi;
  events: EventRecorder;
  log: Logger;
  policy: SourcePolicy;
  /** Namespace writes in flight at once for one RegistryCredential. */
  fanoutConcurrency: number;
  /** Cloud tokens, one cloud call per refresh whatever the number of namespaces. */
  tokens: TokenCache;
  /** Endpoint overrides for the cloud SDKs (tests, air-gapped mirrors). */
  endpoints?: CloudEndpoints;
  onRefresh?: (credential: string, source: 'ecr' | 'gcp' | 'acr', ok: boolean) => void;
  now?: () => Date;
  /** Called after each reconcile with the status it settled on (metrics). */
  onStatus?: (name: string, status: RegistryCredentialStatus | undefined) => void;
}

/** Conflicts are retried on this period: an adopt annotation on a Secret we don't watch. */
export const CONFLICT_RETRY_MS = 60_000;
const SERVICE_ACCOUNT_RETRIES = 5;

type NamespaceOutcome =
  | { kind: 'synced'; wrote: number }
  | { kind: 'skipped' }
  | { kind: 'failed'; reason: ConditionReason; message: string; transient: boolean };

/** Thrown after status is written when some namespace failed for a reason worth retrying. */
export class RetryableSyncError extends Error {
  override name = 'RetryableSyncError';
}

interface Writes {
  secrets: number;
  serviceAccounts: number;
  deleted: number;
}

export class Reconciler {
  private readonly o: ReconcilerOptions;
  private readonly now: () => Date;
  /**
   * The namespace syncs in flight, by `credential/namespace`. The fast path and a full
   * reconcile run on separate workers; each waits for the other's sync of the same namespace
   * and then finds it done, instead of both writing it (an AlreadyExists or a 409 each).
   */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** The dockerconfigjson each RegistryCredential's latest reconcile resolved, by name. */
  private readonly latestJson = new Map<string, string>();

  constructor(options: ReconcilerOptions) {
    this.o = options;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * The per-namespace fast path: sync one namespace of one RegistryCredential from the caches,
   * without waiting behind a full reconcile of every namespace (a new namespace or
   * ServiceAccount, or one whose entry someone removed). It writes only what the full
   * reconcile would write there; namespaces leaving the targets, conflicts and status stay
   * with the full reconcile (`fullReconcile` asks for one). It never syncs a namespace at the
   * same time as a full reconcile's fan-out does (syncExclusive).
   */
  async reconcileNamespace(name: string, ns: string): Promise<NamespaceReconcileResult> {
    const cred = this.o.view.credential(name);
    // Deletion, suspension and the finalizer are the full reconcile's, queued by the
    // RegistryCredential's own events.
    if (!cred || cred.metadata.deletionTimestamp || cred.spec.suspend) return {};
    if (!(cred.metadata.finalizers ?? []).includes(CLEANUP_FINALIZER)) return {};
    const info = this.o.view.namespace(ns);
    let selects: (ns: NamespaceInfo) => boolean;
    try {
      selects = namespaceSelection(cred.spec);
    } catch {
      return { fullReconcile: true }; // it reports the invalid selector
    }
    if (!info || !selects(info)) return { fullReconcile: true }; // cleanup, if any
    const secretName = effectiveSecretName(cred);
    let json: string;
    try {
      const resolved = await resolveCredentials(cred, this.o.view, this.o.policy, {
        tokens: this.o.tokens,
        now: this.now(),
        written: () => this.writtenAuths(name, secretName),
        ...(this.o.endpoints ? { endpoints: this.o.endpoints } : {}),
      });
      // What to write without a token, or with a refresh failing: the full reconcile decides.
      if (resolved.entries.size === 0 || resolved.refreshErrors.length > 0) {
        return { fullReconcile: true };
      }
      json = buildDockerConfigJson(resolved.entries);
      this.latestJson.set(name, json);
      if (this.inSync(cred, ns, secretName, json)) return {};
    } catch (error) {
      if (error instanceof CredentialError) return { fullReconcile: true };
      throw error;
    }
    const writes: Writes = { secrets: 0, serviceAccounts: 0, deleted: 0 };
    const outcome = await this.syncExclusive(cred, ns, secretName, json, writes);
    if (outcome.kind === 'failed' && outcome.transient)
      throw new RetryableSyncError(outcome.message);
    // A conflict shows in the status; a namespace gone under us leaves the targets.
    return outcome.kind === 'synced' ? {} : { fullReconcile: true };
  }

  /**
   * True when `secret` (a managed Secret of a credential that selects its namespace) is what
   * that credential's latest reconcile would write there: an event carrying it needs no work.
   * Catches our own writes whose watch event arrives before the write's response.
   */
  upToDate(secret: V1Secret, credName: string): boolean {
    const cred = this.o.view.credential(credName);
    const json = this.latestJson.get(credName);
    const ns = secret.metadata?.namespace;
    if (!cred || json === undefined || !ns) return false;
    if (secret.metadata?.name !== effectiveSecretName(cred)) return false;
    if (classifySecret(secret, credName).kind !== 'ours') return false;
    try {
      return !secretNeedsUpdate(secret, desiredSecret(cred, ns, json));
    } catch {
      return false;
    }
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const cred = this.o.view.credential(name);
    if (!cred) {
      this.latestJson.delete(name);
      // Gone without our finalizer having run (removed by hand): garbage collection deletes
      // the Secrets through their ownerReference; our entries on ServiceAccounts are ours to
      // remove.
      await this.removeStale(name, undefined);
      this.o.onStatus?.(name, undefined);
      return {};
    }
    const log = this.o.log.child({ registryCredential: name });
    if (cred.metadata.deletionTimestamp) return this.finalize(cred, log);
    if (cred.spec.suspend) {
      await this.writeStatus(cred, this.suspendedStatus(cred));
      return {};
    }
    const current = await this.ensureFinalizer(cred);

    let selects: (ns: NamespaceInfo) => boolean;
    try {
      if (current.spec.refreshInterval !== undefined) parseDuration(current.spec.refreshInterval);
      selects = namespaceSelection(current.spec);
    } catch (error) {
      if (!(error instanceof CredentialError)) throw error;
      await this.writeStatus(current, this.failedStatus(current, error.reason, error.message));
      return {};
    }

    const targets = new Set<string>();
    for (const ns of this.o.view.namespaces()) if (selects(ns)) targets.add(ns.name);
    const secretName = effectiveSecretName(current);

    let resolved: ResolvedWithTokens | undefined;
    let credentialError: CredentialError | undefined;
    let registryStatuses = current.status?.registries;
    // When to try the cloud again, kept even when nothing is written for lack of any token.
    let nextAttemptAt: Date | undefined;
    try {
      resolved = await resolveCredentials(current, this.o.view, this.o.policy, {
        tokens: this.o.tokens,
        now: this.now(),
        written: () => this.writtenAuths(name, secretName),
        ...(this.o.endpoints ? { endpoints: this.o.endpoints } : {}),
        onRefresh: (source, ok, error) => {
          this.o.onRefresh?.(name, source, ok);
          if (ok) log.info('token refreshed', { source });
          else log.warn('token refresh failed', { source, error: error ?? 'unknown error' });
        },
      });
      registryStatuses = resolved.registries;
      nextAttemptAt = resolved.nextAttemptAt;
      const first = resolved.refreshErrors[0];
      const wroteBefore = this.o.view.managedSecretsOf(name).length > 0;
      if (
        resolved.entries.size === 0 &&
        resolved.expiredServers.length === 0 &&
        first &&
        !wroteBefore
      ) {
        // No token was ever obtained and nothing was written yet: an empty Secret everywhere
        // would help no one. (Once Secrets exist, they are rewritten without the registry, so
        // a token that expired while we were down is not left in place.)
        credentialError = first;
        resolved = undefined;
      }
    } catch (error) {
      if (!(error instanceof CredentialError)) throw error;
      credentialError = error;
    }

    const writes: Writes = { secrets: 0, serviceAccounts: 0, deleted: 0 };
    // Namespaces that left the targets go first (a revocation should not wait for a fan-out).
    const cleanupErrors = [
      ...(await this.removeStale(name, { selects, secretName, replaced: () => false }, writes)),
      ...(await this.removeDanglingEntries(name, selects, secretName, writes)),
    ];
    const outcomes = new Map<string, NamespaceOutcome>();
    if (resolved) {
      let json: string;
      try {
        json = buildDockerConfigJson(resolved.entries);
        // Built once per reconcile; every namespace gets the same bytes.
        desiredSecret(current, 'probe', json);
        this.latestJson.set(name, json);
      } catch (error) {
        if (!(error instanceof CredentialError)) throw error;
        await this.writeStatus(current, this.failedStatus(current, error.reason, error.message));
        return {};
      }
      const queue = new PQueue({ concurrency: this.o.fanoutConcurrency });
      for (const ns of [...targets].sort()) {
        if (this.inSync(current, ns, secretName, json)) {
          outcomes.set(ns, { kind: 'synced', wrote: 0 });
          continue;
        }
        void queue.add(async () => {
          outcomes.set(ns, await this.syncExclusive(current, ns, secretName, json, writes));
        });
      }
      await queue.onIdle();
    }
    // A Secret under an old secretName leaves a namespace only once the new one is in place
    // there, after the writes (make before break: its ServiceAccounts never lose a working pull
    // secret, and a namespace where the new name conflicts or failed keeps the old one).
    const replaced = (ns: string) => this.holdsCurrent(current, ns, secretName);
    cleanupErrors.push(
      ...(await this.removeStale(name, { selects, secretName, replaced }, writes)),
    );

    const status = this.computeStatus(
      current,
      targets,
      outcomes,
      resolved,
      registryStatuses,
      credentialError,
      cleanupErrors,
    );
    // The next moment a token is refreshed, or retried after a failure.
    if (nextAttemptAt) status.nextRefreshAt = conditionTime(nextAttemptAt);
    await this.writeStatus(current, status);
    if (writes.secrets + writes.serviceAccounts + writes.deleted > 0) {
      log.info('synced', { ...writes, targets: targets.size });
    }

    const transient = [...outcomes.values()].some((o) => o.kind === 'failed' && o.transient);
    if (transient || cleanupErrors.length > 0) {
      throw new RetryableSyncError(
        `some namespaces failed and will be retried: ${status.failedNamespaces?.map((f) => f.name).join(', ') ?? ''}`,
      );
    }
    const conflicts = [...outcomes.values()].some((o) => o.kind === 'failed');
    const delays: number[] = [];
    if (conflicts) delays.push(CONFLICT_RETRY_MS);
    if (nextAttemptAt) {
      delays.push(Math.max(1_000, nextAttemptAt.getTime() - this.now().getTime()));
    }
    return delays.length > 0 ? { requeueAfterMs: Math.min(...delays) } : {};
  }

  /** The auths in one of our current Secrets (all hold the same bytes), if any. */
  private writtenAuths(
    credName: string,
    secretName: string,
  ): Map<string, DockerAuthEntry> | undefined {
    const secret = this.o.view
      .managedSecretsOf(credName)
      .find((s) => s.metadata?.name === secretName);
    if (!secret) return undefined;
    try {
      return parseDockerConfigSecret(secret.type, secret.data);
    } catch {
      return undefined;
    }
  }

  /** True when the cache shows nothing to write in this namespace: the cheap common case. */
  private inSync(cred: RegistryCredential, ns: string, secretName: string, json: string): boolean {
    const existing = this.o.view.managedSecret(ns, secretName);
    if (!existing || secretNeedsUpdate(existing, desiredSecret(cred, ns, json))) return false;
    return this.holdsCurrent(cred, ns, secretName);
  }

  /**
   * True when `ns` holds our Secret under `secretName` and every selected ServiceAccount lists
   * it: whatever its bytes, Pods there pull with it.
   */
  private holdsCurrent(cred: RegistryCredential, ns: string, secretName: string): boolean {
    const existing = this.o.view.managedSecret(ns, secretName);
    if (!existing || classifySecret(existing, cred.metadata.name ?? '').kind !== 'ours') {
      return false;
    }
    return this.serviceAccountChanges(cred, ns, secretName).length === 0;
  }

  private serviceAccountChanges(
    cred: RegistryCredential,
    ns: string,
    secretName: string,
  ): V1ServiceAccount[] {
    const accounts = this.o.view.serviceAccounts(ns);
    const selected = new Set(
      selectedServiceAccounts(
        cred.spec,
        accounts.map((sa) => sa.metadata?.name ?? ''),
      ),
    );
    const changed: V1ServiceAccount[] = [];
    for (const sa of accounts) {
      const name = sa.metadata?.name ?? '';
      const next = selected.has(name)
        ? withPullSecretEntry(sa.imagePullSecrets, secretName)
        : withoutPullSecretEntry(sa.imagePullSecrets, secretName);
      if (next !== undefined) changed.push(sa);
    }
    return changed;
  }

  /**
   * syncNamespace, one at a time per credential and namespace (between the fast path and the
   * full reconcile's fan-out; cleanup of namespaces that left the targets does not take part:
   * the fast path never writes those); a sync that waited re-checks the caches (which hold
   * the other's writes) before writing anything.
   */
  private async syncExclusive(
    cred: RegistryCredential,
    ns: string,
    secretName: string,
    json: string,
    writes: Writes,
  ): Promise<NamespaceOutcome> {
    const key = `${cred.metadata.name ?? ''}/${ns}`;
    let waited = false;
    for (let running = this.inFlight.get(key); running; running = this.inFlight.get(key)) {
      waited = true;
      await running.catch(() => undefined);
    }
    // The other wrote it: done; or it wrote newer bytes (a rotation resolved after ours was),
    // which ours must not overwrite. Only if it succeeded: otherwise ours runs and reports.
    if (waited) {
      const newer = this.latestJson.get(cred.metadata.name ?? '') !== json;
      if (
        newer ? this.holdsCurrent(cred, ns, secretName) : this.inSync(cred, ns, secretName, json)
      ) {
        return { kind: 'synced', wrote: 0 };
      }
    }
    const sync = this.syncNamespace(cred, ns, secretName, json, writes);
    this.inFlight.set(key, sync);
    try {
      return await sync;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async syncNamespace(
    cred: RegistryCredential,
    ns: string,
    secretName: string,
    json: string,
    writes: Writes,
  ): Promise<NamespaceOutcome> {
    const credName = cred.metadata.name ?? '';
    const desired = desiredSecret(cred, ns, json);
    try {
      let existing = this.o.view.managedSecret(ns, secretName);
      let claim = classifySecret(existing, credName);
      if (claim.kind === 'absent') {
        try {
          this.o.view.wroteSecret(await this.o.api.createSecret(desired));
          writes.secrets += 1;
          claim = { kind: 'ours' };
          existing = undefined;
        } catch (error) {
          if (!(error instanceof KubeApiError && error.alreadyExists)) throw error;
          // Not in our cache: a Secret we don't manage (or don't manage yet) holds the name.
          existing = await this.o.api.readSecret(ns, secretName);
          claim = classifySecret(existing, credName);
          if (claim.kind === 'absent') {
            return {
              kind: 'failed',
              reason: 'PartiallySynced',
              message: `Secret ${ns}/${secretName} was deleted while being written`,
              transient: true,
            };
          }
        }
      }
      if (existing && claim.kind === 'otherCredential') {
        const other = this.o.view.credential(claim.owner);
        const otherStillClaims =
          other !== undefined &&
          !other.metadata.deletionTimestamp &&
          effectiveSecretName(other) === secretName &&
          this.targets(other, ns);
        if (
          otherStillClaims &&
          olderCredentialWins(
            {
              name: other.metadata.name ?? '',
              creationTimestamp: other.metadata.creationTimestamp,
              uid: other.metadata.uid,
            },
            {
              name: credName,
              creationTimestamp: cred.metadata.creationTimestamp,
              uid: cred.metadata.uid,
            },
          ) === -1
        ) {
          return {
            kind: 'failed',
            reason: 'Conflict',
            message: `${secretConflictMessage(existing, claim)}, which is older and keeps it`,
            transient: false,
          };
        }
        claim = { kind: 'adoptable' };
      }
      if (existing && claim.kind === 'unmanaged') {
        return {
          kind: 'failed',
          reason: 'Conflict',
          message: secretConflictMessage(existing, claim),
          transient: false,
        };
      }
      if (existing && (claim.kind === 'ours' || claim.kind === 'adoptable')) {
        if (claim.kind === 'adoptable' || secretNeedsUpdate(existing, desired)) {
          this.o.view.wroteSecret(
            await this.o.api.replaceSecret(mergeSecretForUpdate(existing, desired)),
          );
          writes.secrets += 1;
        }
      }
      for (const sa of this.serviceAccountChanges(cred, ns, secretName)) {
        await this.updateServiceAccount(cred, sa, secretName);
        writes.serviceAccounts += 1;
      }
      return { kind: 'synced', wrote: 1 };
    } catch (error) {
      if (error instanceof KubeApiError && (error.notFound || terminating(error))) {
        // The namespace went away (or is going) under us: not a target any more.
        return { kind: 'skipped' };
      }
      const message = error instanceof Error ? error.message : String(error);
      this.o.log.warn('namespace sync failed', {
        registryCredential: credName,
        namespace: ns,
        error: message,
      });
      return {
        kind: 'failed',
        reason: 'PartiallySynced',
        message: safeMessage(message, 256),
        transient: true,
      };
    }
  }

  private targets(cred: RegistryCredential, ns: string): boolean {
    const info = this.o.view.namespace(ns);
    if (!info) return false;
    try {
      return namespaceSelection(cred.spec)(info);
    } catch {
      return false;
    }
  }

  /**
   * Read-modify-write with the resourceVersion: another writer's entries survive because a
   * 409 makes us re-read and re-apply our one change to what they wrote.
   */
  private async updateServiceAccount(
    cred: RegistryCredential,
    cached: V1ServiceAccount,
    secretName: string,
  ): Promise<void> {
    const ns = cached.metadata?.namespace ?? '';
    const name = cached.metadata?.name ?? '';
    let sa: V1ServiceAccount | undefined = cached;
    for (let attempt = 0; attempt < SERVICE_ACCOUNT_RETRIES; attempt++) {
      if (!sa) return;
      const selected = selectedServiceAccounts(cred.spec, [name]).length === 1;
      const next = selected
        ? withPullSecretEntry(sa.imagePullSecrets, secretName)
        : withoutPullSecretEntry(sa.imagePullSecrets, secretName);
      if (next === undefined) return;
      try {
        const written = await this.o.api.replaceServiceAccount({ ...sa, imagePullSecrets: next });
        this.o.view.wroteServiceAccount(written);
        return;
      } catch (error) {
        if (!(error instanceof KubeApiError && error.conflict)) throw error;
        sa = await this.o.api.readServiceAccount(ns, name);
      }
    }
    throw new KubeApiError(
      409,
      'Conflict',
      `ServiceAccount ${ns}/${name} kept changing; will retry`,
    );
  }

  /**
   * Our entries where our Secret is already gone (another client deleted it) and the namespace
   * is no longer a target, or the credential is being deleted: removeStale starts from our
   * Secrets and cannot find these. An entry naming a Secret that does not exist in its
   * namespace points at nothing, whoever wrote it; one naming a Secret that exists (someone
   * else's, or another credential's) is left alone.
   */
  private async removeDanglingEntries(
    credName: string,
    selects: (ns: NamespaceInfo) => boolean,
    secretName: string,
    writes: Writes,
  ): Promise<string[]> {
    const errors: string[] = [];
    for (const ns of this.o.view.namespaces()) {
      if (ns.terminating || selects(ns)) continue;
      const listing = this.o.view
        .serviceAccounts(ns.name)
        .some((sa) => (sa.imagePullSecrets ?? []).some((e) => e.name === secretName));
      if (!listing || this.o.view.managedSecret(ns.name, secretName)) continue;
      try {
        if (await this.o.api.readSecret(ns.name, secretName)) continue;
        writes.serviceAccounts += await this.removeEntries(ns.name, secretName);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.o.log.warn('cleanup failed', {
          registryCredential: credName,
          namespace: ns.name,
          error: message,
        });
        errors.push(`${ns.name}: ${message}`);
      }
    }
    return errors;
  }

  /** Removes our entry from every ServiceAccount in `ns` that has it; returns the writes. */
  private async removeEntries(ns: string, secretName: string): Promise<number> {
    let written = 0;
    for (const sa of this.o.view.serviceAccounts(ns)) {
      let current: V1ServiceAccount | undefined = sa;
      for (let attempt = 0; current && attempt < SERVICE_ACCOUNT_RETRIES; attempt++) {
        const next = withoutPullSecretEntry(current.imagePullSecrets, secretName);
        if (next === undefined) break;
        try {
          this.o.view.wroteServiceAccount(
            await this.o.api.replaceServiceAccount({ ...current, imagePullSecrets: next }),
          );
          written += 1;
          break;
        } catch (error) {
          if (error instanceof KubeApiError && error.notFound) break;
          if (!(error instanceof KubeApiError && error.conflict)) throw error;
          current = await this.o.api.readServiceAccount(ns, sa.metadata?.name ?? '');
        }
      }
    }
    return written;
  }

  /**
   * Deletes our Secrets that should no longer exist and exactly our entries pointing at them:
   * every one when the credential is gone (`live` undefined); otherwise those in namespaces that
   * left the targets, and those under an old secretName in namespaces where the current one is
   * in place (`replaced`). Returns the failures, which are retried.
   */
  private async removeStale(
    credName: string,
    live:
      | {
          /** The credential's selection, applied to the namespace cache as it is now. */
          selects: (ns: NamespaceInfo) => boolean;
          secretName: string;
          /** Whether a targeted namespace holds our Secret under the current name. */
          replaced: (ns: string) => boolean;
        }
      | undefined,
    writes: Writes = { secrets: 0, serviceAccounts: 0, deleted: 0 },
  ): Promise<string[]> {
    const stale = this.o.view.managedSecretsOf(credName).filter((secret) => {
      const ns = secret.metadata?.namespace ?? '';
      const info = this.o.view.namespace(ns);
      // The namespace controller removes everything in a terminating namespace.
      if (info?.terminating) return false;
      // Selection as of now, not as of the reconcile's start: a namespace that arrived during
      // the fan-out already has its Secret from the fast path.
      if (!live || !info || !live.selects(info)) return true;
      return secret.metadata?.name !== live.secretName && live.replaced(ns);
    });
    const errors: string[] = [];
    const queue = new PQueue({ concurrency: this.o.fanoutConcurrency });
    for (const secret of stale) {
      void queue.add(async () => {
        const ns = secret.metadata?.namespace ?? '';
        const name = secret.metadata?.name ?? '';
        try {
          writes.serviceAccounts += await this.removeEntries(ns, name);
          await this.o.api.deleteSecret(ns, name, secret.metadata?.uid);
          this.o.view.deletedSecret(ns, name);
          writes.deleted += 1;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          this.o.log.warn('cleanup failed', {
            registryCredential: credName,
            namespace: ns,
            error: message,
          });
          errors.push(`${ns}: ${message}`);
        }
      });
    }
    await queue.onIdle();
    return errors;
  }

  private async ensureFinalizer(cred: RegistryCredential): Promise<RegistryCredential> {
    const finalizers = cred.metadata.finalizers ?? [];
    if (finalizers.includes(CLEANUP_FINALIZER)) return cred;
    const updated = await this.o.api.setCredentialFinalizers(cred, [
      ...finalizers,
      CLEANUP_FINALIZER,
    ]);
    this.o.view.wroteCredential(updated);
    return updated;
  }

  private async finalize(cred: RegistryCredential, log: Logger): Promise<ReconcileResult> {
    const finalizers = cred.metadata.finalizers ?? [];
    if (!finalizers.includes(CLEANUP_FINALIZER)) return {};
    const name = cred.metadata.name ?? '';
    const writes: Writes = { secrets: 0, serviceAccounts: 0, deleted: 0 };
    const errors = [
      ...(await this.removeStale(name, undefined, writes)),
      ...(await this.removeDanglingEntries(name, () => false, effectiveSecretName(cred), writes)),
    ];
    if (errors.length > 0) {
      await this.o.events.record(
        cred,
        'Warning',
        'CleanupFailed',
        `cleanup failed in ${errors.length} namespace(s); retrying`,
      );
      throw new RetryableSyncError(`cleanup of ${name} failed in ${errors.length} namespace(s)`);
    }
    try {
      await this.o.api.setCredentialFinalizers(
        cred,
        finalizers.filter((f) => f !== CLEANUP_FINALIZER),
      );
    } catch (error) {
      // Already gone: a replay of a finalize that completed, before the watch caught up.
      if (!(error instanceof KubeApiError && error.notFound)) throw error;
      return {};
    }
    this.o.tokens.forget(cred.metadata.uid ?? name);
    log.info('cleaned up', { deleted: writes.deleted });
    return {};
  }

  private suspendedStatus(cred: RegistryCredential): RegistryCredentialStatus {
    const now = this.now();
    const gen = cred.metadata.generation;
    let conditions = cred.status?.conditions;
    conditions = setCondition(
      conditions,
      {
        type: 'Ready',
        status: 'False',
        reason: 'Suspended',
        message: 'spec.suspend is true: nothing is written or removed',
        observedGeneration: gen,
      },
      now,
    );
    conditions = setCondition(
      conditions,
      {
        type: 'Synced',
        status: 'False',
        reason: 'Suspended',
        message: 'spec.suspend is true',
        observedGeneration: gen,
      },
      now,
    );
    return { ...cred.status, observedGeneration: gen, conditions };
  }

  private failedStatus(
    cred: RegistryCredential,
    reason: ConditionReason,
    rawMessage: string,
  ): RegistryCredentialStatus {
    const now = this.now();
    const gen = cred.metadata.generation;
    const message = safeMessage(rawMessage);
    let conditions = cred.status?.conditions;
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'False', reason, message, observedGeneration: gen },
      now,
    );
    conditions = setCondition(
      conditions,
      { type: 'CredentialsReady', status: 'False', reason, message, observedGeneration: gen },
      now,
    );
    conditions = setCondition(
      conditions,
      {
        type: 'Synced',
        status: 'False',
        reason,
        message: 'not syncing until the spec is valid; existing Secrets are kept',
        observedGeneration: gen,
      },
      now,
    );
    return { ...cred.status, observedGeneration: gen, conditions };
  }

  private computeStatus(
    cred: RegistryCredential,
    targets: ReadonlySet<string>,
    outcomes: ReadonlyMap<string, NamespaceOutcome>,
    resolved: ResolvedWithTokens | undefined,
    registries: RegistryCredentialStatus['registries'],
    credentialError: CredentialError | undefined,
    cleanupErrors: readonly string[],
  ): RegistryCredentialStatus {
    const now = this.now();
    const gen = cred.metadata.generation;
    const failed: FailedNamespace[] = [];
    let synced = 0;
    let targetCount = 0;
    for (const ns of targets) {
      const outcome = outcomes.get(ns);
      if (outcome?.kind === 'skipped') continue;
      targetCount += 1;
      if (outcome?.kind === 'synced') synced += 1;
      else if (outcome?.kind === 'failed')
        failed.push({ name: ns, reason: outcome.reason, message: outcome.message });
    }
    failed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    let conditions = cred.status?.conditions;
    const refreshErrors = resolved?.refreshErrors ?? [];
    const firstRefreshError = refreshErrors[0];
    const credentialsCondition: Omit<Condition, 'lastTransitionTime'> = credentialError
      ? {
          type: 'CredentialsReady',
          status: 'False',
          reason: credentialError.reason,
          message: safeMessage(credentialError.message),
          observedGeneration: gen,
        }
      : firstRefreshError
        ? {
            type: 'CredentialsReady',
            status: 'False',
            reason: 'RefreshFailed',
            message: safeMessage(
              firstRefreshError.message +
                (refreshErrors.length > 1 ? ` (and ${refreshErrors.length - 1} more)` : ''),
            ),
            observedGeneration: gen,
          }
        : {
            type: 'CredentialsReady',
            status: 'True',
            reason: 'CredentialsResolved',
            message: `${resolved?.registries.length ?? 0} registries resolved`,
            observedGeneration: gen,
          };
    conditions = setCondition(conditions, credentialsCondition, now);

    let syncedCondition: Omit<Condition, 'lastTransitionTime'>;
    if (credentialError) {
      syncedCondition = {
        type: 'Synced',
        status: 'False',
        reason: credentialError.reason,
        message: 'credentials are not ready; existing Secrets are kept unchanged',
        observedGeneration: gen,
      };
    } else if (failed.length > 0 || cleanupErrors.length > 0) {
      const conflicts = failed.filter((f) => f.reason === 'Conflict');
      const reason: ConditionReason =
        conflicts.length === failed.length && cleanupErrors.length === 0
          ? 'Conflict'
          : 'PartiallySynced';
      const parts = [`${synced}/${targetCount} namespaces synced`];
      if (conflicts.length > 0)
        parts.push(
          `${conflicts.length} in conflict (${conflicts
            .slice(0, 3)
            .map((c) => c.name)
            .join(', ')}${conflicts.length > 3 ? ', …' : ''})`,
        );
      const other = failed.length - conflicts.length;
      if (other > 0) parts.push(`${other} failed and will be retried`);
      if (cleanupErrors.length > 0)
        parts.push(`cleanup failed in ${cleanupErrors.length} namespace(s)`);
      syncedCondition = {
        type: 'Synced',
        status: 'False',
        reason,
        message: parts.join('; '),
        observedGeneration: gen,
      };
    } else {
      syncedCondition = {
        type: 'Synced',
        status: 'True',
        reason: 'Synced',
        message: `${synced}/${targetCount} namespaces synced`,
        observedGeneration: gen,
      };
    }
    conditions = setCondition(conditions, syncedCondition, now);

    let readyCondition: Omit<Condition, 'lastTransitionTime'>;
    if (credentialsCondition.status !== 'True') {
      readyCondition = { ...credentialsCondition, type: 'Ready' };
    } else if (syncedCondition.status !== 'True') {
      readyCondition = { ...syncedCondition, type: 'Ready' };
    } else if (targetCount === 0) {
      readyCondition = {
        type: 'Ready',
        status: 'True',
        reason: 'NoTargets',
        message: 'no namespace matched spec.namespaceSelector or spec.namespaces',
        observedGeneration: gen,
      };
    } else {
      readyCondition = {
        type: 'Ready',
        status: 'True',
        reason: 'Ready',
        message: `${synced} namespaces hold the current Secret`,
        observedGeneration: gen,
      };
    }
    conditions = setCondition(conditions, readyCondition, now);

    const status: RegistryCredentialStatus = {
      observedGeneration: gen,
      conditions,
      targetNamespaces: targetCount,
      syncedNamespaces: credentialError ? 0 : synced,
    };
    if (failed.length > 0) status.failedNamespaces = failed.slice(0, MAX_FAILED_NAMESPACES);
    if (registries && registries.length > 0) status.registries = registries;
    return status;
  }

  /** Writes status only when it differs; records an Event when Ready changes. */
  private async writeStatus(
    cred: RegistryCredential,
    status: RegistryCredentialStatus,
  ): Promise<void> {
    const name = cred.metadata.name ?? '';
    this.o.onStatus?.(name, status);
    if (sameStatus(cred.status, status)) return;
    const updated = await this.o.api.patchCredentialStatus(name, status);
    this.o.view.wroteCredential(updated);
    const before = findCondition(cred.status?.conditions, 'Ready');
    const after = findCondition(status.conditions, 'Ready');
    // Events on transitions only, summarised: one for Ready changing, one per failure kind
    // whose namespaces changed; never one per namespace.
    if (after && (before?.status !== after.status || before.reason !== after.reason)) {
      await this.o.events.record(
        cred,
        after.status === 'True' ? 'Normal' : 'Warning',
        after.reason,
        after.message,
      );
    }
    const failures = (s?: RegistryCredentialStatus) => {
      const byReason = new Map<string, string[]>();
      for (const f of s?.failedNamespaces ?? []) {
        byReason.set(f.reason, [...(byReason.get(f.reason) ?? []), f.name]);
      }
      return byReason;
    };
    const was = failures(cred.status);
    for (const [reason, names] of failures(status)) {
      if ((was.get(reason) ?? []).join(',') === names.join(',')) continue;
      const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
      await this.o.events.record(
        cred,
        'Warning',
        reason,
        `${reason} in ${names.length} namespace(s): ${shown}`,
      );
    }
  }
}

function terminating(error: KubeApiError): boolean {
  return error.code === 403 && /being terminated/.test(error.message);
}

/** Status equality as the API server would store it (key order and undefined ignored). */
export function sameStatus(
  a: RegistryCredentialStatus | undefined,
  b: RegistryCredentialStatus,
): boolean {
  return canonical(a ?? {}) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, inner]) => inner !== undefined && inner !== null)
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
      );
    }
    return v;
  });
}

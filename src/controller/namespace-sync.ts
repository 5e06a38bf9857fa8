// One namespace of one RegistryCredential, or of several fanning out together: their Secrets,
// then one write per ServiceAccount for all their entries. Used by the full reconcile's
// fan-out and by the per-namespace fast path (a new namespace or ServiceAccount, or one
// someone edited), never both at once for the same credential and namespace.
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import type { NamespaceOutcome } from '../api/status.ts';
import { CLEANUP_FINALIZER, type RegistryCredential } from '../api/types.ts';
import { buildDockerConfigJson } from '../credentials/dockerconfigjson.ts';
import { CredentialError } from '../credentials/errors.ts';
import { KubeApiError } from '../kube/rest.ts';
import { ServiceAccountWrites } from '../kube/service-accounts.ts';
import { safeMessage } from '../observability/redact.ts';
import { desiredSecret, effectiveSecretName, secretNeedsUpdate } from './desired.ts';
import { classifySecret, decideSecretWrite } from './ownership.ts';
import { entryEdit } from './pull-secret-entries.ts';
import {
  noWrites,
  type ReconcileContext,
  RetryableSyncError,
  resolveFor,
  type Writes,
} from './reconcile-context.ts';
import { type NamespaceInfo, namespaceSelection, selectedServiceAccounts } from './selection.ts';
import { cloudAuths, TokenState } from './token-state.ts';

export interface NamespaceReconcileResult {
  /** The namespace needs what only the full reconcile does (status, cleanup, a decision). */
  fullReconcile?: boolean;
}

/** One credential's sync of one namespace: what its Secret there should hold. */
export interface NamespaceWrite {
  cred: RegistryCredential;
  secretName: string;
  json: string;
  /** The credential's reconcile's counts (its log line). */
  writes: Writes;
}

/** One syncTogether call: its items, their in-flight keys, and the outcomes it fills in. */
interface SyncBatch {
  ns: string;
  items: readonly NamespaceWrite[];
  keys: readonly string[];
  outcomes: NamespaceOutcome[];
}

export class NamespaceSync {
  private readonly ctx: ReconcileContext;
  /**
   * The namespace syncs in flight, by `credential/namespace`. The fast path and a full
   * reconcile run on separate workers; each waits for the other's sync of the same namespace
   * and then finds it done, instead of both writing it (an AlreadyExists or a 409 each).
   */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** The dockerconfigjson each RegistryCredential's latest reconcile resolved, by name. */
  private readonly latestJson = new Map<string, string>();
  /**
   * ServiceAccount writes of every credential, one at a time per ServiceAccount: entries that
   * several credentials add to it at once go in one write instead of racing into 409s.
   */
  private readonly serviceAccountWrites: ServiceAccountWrites;

  constructor(ctx: ReconcileContext) {
    this.ctx = ctx;
    this.serviceAccountWrites = new ServiceAccountWrites(ctx.api);
  }

  /** Records the bytes a reconcile resolved for `credName` (what its Secrets should hold). */
  remember(credName: string, json: string): void {
    this.latestJson.set(credName, json);
  }

  forget(credName: string): void {
    this.latestJson.delete(credName);
  }

  /**
   * The per-namespace fast path: sync one namespace, for every RegistryCredential due there
   * (a namespace or ServiceAccount that several select), from the caches, without waiting
   * behind a full reconcile of every namespace. Each credential's Secret, then ONE write per
   * ServiceAccount for all their entries, as a batched fan-out writes (syncTogether). It
   * writes only what the full reconcile would write there; namespaces leaving the targets,
   * conflicts and status stay with the full reconcile (`fullReconcile` asks for one). Each
   * credential's result on its own, in the order of `names`: rejected with a
   * RetryableSyncError where its sync failed and may succeed later.
   */
  async reconcileNamespaces(
    ns: string,
    names: readonly string[],
  ): Promise<Array<PromiseSettledResult<NamespaceReconcileResult>>> {
    const plans = await Promise.allSettled(names.map((name) => this.fastPathPlan(name, ns)));
    const results: Array<PromiseSettledResult<NamespaceReconcileResult>> = [];
    const writing: Array<{ at: number; write: NamespaceWrite }> = [];
    plans.forEach((plan, i) => {
      if (plan.status === 'rejected') {
        results.push(plan);
      } else if ('write' in plan.value) {
        writing.push({ at: i, write: plan.value.write });
        results.push({ status: 'fulfilled', value: {} }); // its outcome replaces it below
      } else {
        results.push({ status: 'fulfilled', value: plan.value.result });
      }
    });
    if (writing.length === 0) return results;
    const outcomes = await this.syncTogether(
      ns,
      writing.map(({ write }) => write),
    );
    writing.forEach(({ at }, j) => {
      const outcome = outcomes[j] as NamespaceOutcome;
      results[at] =
        outcome.kind === 'failed' && outcome.transient
          ? { status: 'rejected', reason: new RetryableSyncError(outcome.message) }
          : // A conflict shows in the status; a namespace gone under us leaves the targets.
            {
              status: 'fulfilled',
              value: outcome.kind === 'synced' ? {} : { fullReconcile: true },
            };
    });
    return results;
  }

  /** What the fast path does for one credential in `ns`: nothing, a hand-over, or a write. */
  private async fastPathPlan(
    name: string,
    ns: string,
  ): Promise<{ result: NamespaceReconcileResult } | { write: NamespaceWrite }> {
    const { view } = this.ctx;
    const cred = view.credential(name);
    // Deletion, suspension and the finalizer are the full reconcile's, queued by the
    // RegistryCredential's own events.
    if (!cred || cred.metadata.deletionTimestamp || cred.spec.suspend) return { result: {} };
    if (!(cred.metadata.finalizers ?? []).includes(CLEANUP_FINALIZER)) return { result: {} };
    const info = view.namespace(ns);
    let selects: (ns: NamespaceInfo) => boolean;
    try {
      selects = namespaceSelection(cred.spec);
    } catch {
      return { result: { fullReconcile: true } }; // it reports the invalid selector
    }
    if (!info || !selects(info)) return { result: { fullReconcile: true } }; // cleanup, if any
    const secretName = effectiveSecretName(cred);
    try {
      // Every cloud call counts, whichever path made it (refresh failures metric).
      const resolved = await resolveFor(this.ctx, cred, (source, ok) =>
        this.ctx.onRefresh?.(name, source, ok),
      );
      // What to write without a token, or with a refresh failing: the full reconcile decides;
      // and a token it has not saved yet is saved and fanned out by it, everywhere at once.
      if (
        resolved.entries.size === 0 ||
        resolved.refreshErrors.length > 0 ||
        !new TokenState(this.ctx).holds(cred, cloudAuths(resolved))
      ) {
        return { result: { fullReconcile: true } };
      }
      const json = buildDockerConfigJson(resolved.entries);
      this.remember(name, json);
      if (this.inSync(cred, ns, secretName, json)) return { result: {} };
      return { write: { cred, secretName, json, writes: noWrites() } };
    } catch (error) {
      if (error instanceof CredentialError) return { result: { fullReconcile: true } };
      throw error;
    }
  }

  /**
   * True when `secret` (a managed Secret of a credential that selects its namespace) is what
   * that credential's latest reconcile would write there: an event carrying it needs no work.
   * Catches our own writes whose watch event arrives before the write's response.
   */
  upToDate(secret: V1Secret, credName: string): boolean {
    const cred = this.ctx.view.credential(credName);
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

  /** True when the cache shows nothing to write in this namespace: the cheap common case. */
  inSync(cred: RegistryCredential, ns: string, secretName: string, json: string): boolean {
    const existing = this.ctx.view.managedSecret(ns, secretName);
    if (!existing || secretNeedsUpdate(existing, desiredSecret(cred, ns, json))) return false;
    return this.holdsCurrent(cred, ns, secretName);
  }

  /**
   * True when `ns` holds our Secret under `secretName` and every selected ServiceAccount lists
   * it: whatever its bytes, Pods there pull with it.
   */
  holdsCurrent(cred: RegistryCredential, ns: string, secretName: string): boolean {
    const existing = this.ctx.view.managedSecret(ns, secretName);
    if (!existing || classifySecret(existing, cred.metadata.name ?? '').kind !== 'ours') {
      return false;
    }
    return this.serviceAccountChanges(cred, ns, secretName).length === 0;
  }

  /**
   * syncNamespace of one or several credentials in one namespace (the fast path, a batched
   * fan-out: ADR 0014 "Namespace-major writes"): each credential's Secret, then ONE write per
   * ServiceAccount composing every credential's entry edit. Outcomes in the order of `items`.
   * One at a time per credential and namespace (between the fast path and the full
   * reconcile's fan-out; cleanup of namespaces that left the targets does not take part: the
   * fast path never writes those). Items that no other sync holds are written at once; an item
   * whose credential the other path is writing here waits for that sync and re-checks the
   * caches (which hold its writes) before writing anything. The free items do not wait with
   * it: a new ServiceAccount's entry of one credential waited behind another credential's full
   * reconcile writing that namespace through a loaded API server (issue #20, onboarding during
   * a rotation: 1.2-1.6 s for 5 % of the new namespaces).
   */
  async syncTogether(ns: string, items: readonly NamespaceWrite[]): Promise<NamespaceOutcome[]> {
    const keys = items.map((item) => `${item.cred.metadata.name ?? ''}/${ns}`);
    const outcomes: NamespaceOutcome[] = items.map(() => ({ kind: 'synced', wrote: 0 }));
    const free: number[] = [];
    const held: number[] = [];
    keys.forEach((key, i) => {
      (this.inFlight.has(key) ? held : free).push(i);
    });
    const batch = { ns, items, keys, outcomes };
    await Promise.all([this.syncItems(batch, free), this.syncAfterOthers(batch, held)]);
    return outcomes;
  }

  /** Waits for the other syncs of these items, then writes those they did not leave in place. */
  private async syncAfterOthers(batch: SyncBatch, held: readonly number[]): Promise<void> {
    if (held.length === 0) return;
    const { ns, items, keys } = batch;
    for (;;) {
      const running = held.flatMap((i) => this.inFlight.get(keys[i] as string) ?? []);
      if (running.length === 0) break;
      await Promise.all(running.map((sync) => sync.catch(() => undefined)));
    }
    const todo = held.filter((i) => {
      // The other wrote it: done; or it wrote newer bytes (a rotation resolved after ours
      // was), which ours must not overwrite. Only if it succeeded: otherwise ours runs and
      // reports.
      const { cred, secretName, json } = items[i] as NamespaceWrite;
      const newer = this.latestJson.get(cred.metadata.name ?? '') !== json;
      return !(newer
        ? this.holdsCurrent(cred, ns, secretName)
        : this.inSync(cred, ns, secretName, json));
    });
    await this.syncItems(batch, todo);
  }

  /** One syncNamespace of the items `todo`, held in flight for their keys while it runs. */
  private async syncItems(batch: SyncBatch, todo: readonly number[]): Promise<void> {
    if (todo.length === 0) return;
    const { ns, items, keys, outcomes } = batch;
    const sync = this.syncNamespace(
      ns,
      todo.map((i) => items[i] as NamespaceWrite),
    );
    for (const i of todo) this.inFlight.set(keys[i] as string, sync);
    try {
      const results = await sync;
      todo.forEach((i, j) => {
        outcomes[i] = results[j] as NamespaceOutcome;
      });
    } finally {
      for (const i of todo) {
        if (this.inFlight.get(keys[i] as string) === sync) this.inFlight.delete(keys[i] as string);
      }
    }
  }

  /** The ServiceAccounts of `ns` whose entries disagree with `cred`, with whether it selects each. */
  private serviceAccountChanges(
    cred: RegistryCredential,
    ns: string,
    secretName: string,
  ): Array<{ sa: V1ServiceAccount; selected: boolean }> {
    const accounts = this.ctx.view.serviceAccounts(ns);
    const selected = new Set(
      selectedServiceAccounts(
        cred.spec,
        accounts.map((sa) => sa.metadata?.name ?? ''),
      ),
    );
    return accounts
      .map((sa) => ({ sa, selected: selected.has(sa.metadata?.name ?? '') }))
      .filter(({ sa, selected }) => entryEdit(sa, secretName, selected) !== undefined);
  }

  /**
   * The Secret of each item, one after the other, then the entries of those whose Secret is
   * in place: one write per ServiceAccount for all of them.
   */
  private async syncNamespace(
    ns: string,
    items: readonly NamespaceWrite[],
  ): Promise<NamespaceOutcome[]> {
    const outcomes: Array<NamespaceOutcome | undefined> = [];
    for (const item of items) outcomes.push(await this.secretStep(ns, item));
    const ready = items.filter((_, i) => outcomes[i] === undefined);
    if (ready.length > 0) {
      try {
        await this.entryStep(ns, ready);
      } catch (error) {
        items.forEach((item, i) => {
          if (outcomes[i] === undefined) outcomes[i] = this.failure(ns, item.cred, error);
        });
      }
    }
    return outcomes.map((o) => o ?? { kind: 'synced', wrote: 1 });
  }

  /** Writes the item's Secret; undefined when it is in place and its entries may follow. */
  private async secretStep(
    ns: string,
    { cred, secretName, json, writes }: NamespaceWrite,
  ): Promise<NamespaceOutcome | undefined> {
    const { view, api } = this.ctx;
    const desired = desiredSecret(cred, ns, json);
    const claimant = (owner: string) => {
      const other = view.credential(owner);
      const stillClaims =
        other !== undefined &&
        !other.metadata.deletionTimestamp &&
        effectiveSecretName(other) === secretName &&
        this.targets(other, ns);
      if (!stillClaims) return undefined;
      return {
        name: other.metadata.name ?? '',
        creationTimestamp: other.metadata.creationTimestamp,
        uid: other.metadata.uid,
      };
    };
    try {
      // Ours from the managed cache, else someone else's from the named-Secret cache.
      const cached =
        view.managedSecret(ns, secretName) ?? view.unmanagedSecret(ns, secretName) ?? undefined;
      let decision = decideSecretWrite(cached, cred, desired, claimant);
      if (cached && !view.isComplete(cached) && decision.action === 'update') {
        // Its metadata was trimmed in the cache: write back what the server holds.
        decision = decideSecretWrite(await api.readSecret(ns, secretName), cred, desired, claimant);
      }
      if (decision.action === 'create') {
        try {
          view.wroteSecret(await api.createSecret(desired));
          writes.secrets += 1;
          decision = { action: 'none' };
        } catch (error) {
          if (!(error instanceof KubeApiError && error.alreadyExists)) throw error;
          // Not in our cache: a Secret we don't manage (or don't manage yet) holds the name.
          const existing = await api.readSecret(ns, secretName);
          if (!existing) {
            return {
              kind: 'failed',
              reason: 'PartiallySynced',
              message: `Secret ${ns}/${secretName} was deleted while being written`,
              transient: true,
            };
          }
          decision = decideSecretWrite(existing, cred, desired, claimant);
        }
      }
      if (decision.action === 'conflict') {
        return { kind: 'failed', reason: 'Conflict', message: decision.message, transient: false };
      }
      if (decision.action === 'update') {
        view.wroteSecret(await api.replaceSecret(decision.object));
        writes.secrets += 1;
      }
      if (decision.action === 'recreate') {
        await api.deleteSecret(ns, secretName, decision.uid);
        view.deletedSecret(ns, secretName);
        view.wroteSecret(await api.createSecret(desired));
        writes.secrets += 1;
      }
      return undefined;
    } catch (error) {
      return this.failure(ns, cred, error);
    }
  }

  /**
   * Every item's entry edits of each ServiceAccount of `ns`, composed into one
   * read-modify-write of it (ADR 0004: re-applied to the fresh object after a 409, so
   * everyone else's entries stay).
   */
  private async entryStep(ns: string, items: readonly NamespaceWrite[]): Promise<void> {
    const { view } = this.ctx;
    const accounts = view.serviceAccounts(ns);
    const names = accounts.map((sa) => sa.metadata?.name ?? '');
    const selecting = items.map((item) => new Set(selectedServiceAccounts(item.cred.spec, names)));
    for (const sa of accounts) {
      const saName = sa.metadata?.name ?? '';
      const edits = items
        .map((item, i) => ({ item, selected: (selecting[i] as Set<string>).has(saName) }))
        .filter(({ item, selected }) => entryEdit(sa, item.secretName, selected) !== undefined);
      if (edits.length === 0) continue;
      // The credential whose edit the write made first: its reconcile counts the write.
      const counted: { item?: NamespaceWrite } = {};
      const result = await this.serviceAccountWrites.update(sa, (current) => {
        delete counted.item;
        let next = current;
        for (const { item, selected } of edits) {
          const edited = entryEdit(next, item.secretName, selected);
          if (edited === undefined) continue;
          next = edited;
          counted.item ??= item;
        }
        return counted.item ? next : undefined;
      });
      if (result.kind === 'written') {
        view.wroteServiceAccount(result.sa);
        if (!result.merged && counted.item) counted.item.writes.serviceAccounts += 1;
      }
    }
  }

  /** A namespace sync's error as its outcome. */
  private failure(ns: string, cred: RegistryCredential, error: unknown): NamespaceOutcome {
    if (error instanceof KubeApiError && (error.notFound || terminating(error))) {
      // The namespace went away (or is going) under us: not a target any more.
      return { kind: 'skipped' };
    }
    const message = error instanceof Error ? error.message : String(error);
    this.ctx.log.warn('namespace sync failed', {
      registryCredential: cred.metadata.name ?? '',
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

  private targets(cred: RegistryCredential, ns: string): boolean {
    const info = this.ctx.view.namespace(ns);
    if (!info) return false;
    try {
      return namespaceSelection(cred.spec)(info);
    } catch {
      return false;
    }
  }
}

function terminating(error: KubeApiError): boolean {
  return error.code === 403 && /being terminated/.test(error.message);
}

// The reconciler: read the caches, compute the desired state from scratch, write only the
// difference (controller-runtime's reconcile.Reconciler). A work item is a RegistryCredential
// name: everything it writes, and its status. Replaying it any number of times is harmless,
// and a reconcile that finds nothing to change writes nothing (status included). Credentials
// due together are reconciled together (reconcileTogether: one fan-out, one write per
// ServiceAccount for all their entries; ADR 0014, "Namespace-major writes"). The parts
// live next to it: namespace-sync.ts (one namespace, and the fast path), ownership.ts (what
// we may write), cleanup.ts (what we take back), status-writer.ts and api/status.ts.
import PQueue from 'p-queue';
import { conditionTime } from '../api/conditions.ts';
import { parseDuration } from '../api/duration.ts';
import {
  computeStatus,
  failedStatus,
  type NamespaceOutcome,
  suspendedStatus,
} from '../api/status.ts';
import {
  CLEANUP_FINALIZER,
  REFRESH_REQUESTED_ANNOTATION,
  type RegistryCredential,
  type RegistryCredentialStatus,
} from '../api/types.ts';
import { buildDockerConfigJson } from '../credentials/dockerconfigjson.ts';
import { CredentialError } from '../credentials/errors.ts';
import type { ResolvedWithTokens } from '../credentials/resolve.ts';
import type { Logger } from '../observability/logger.ts';
import { Cleanup } from './cleanup.ts';
import { desiredSecret, effectiveSecretName } from './desired.ts';
import { NamespaceSync } from './namespace-sync.ts';
import {
  noWrites,
  type ReconcileContext,
  type ReconcilerOptions,
  RetryableSyncError,
  resolveFor,
  type Writes,
} from './reconcile-context.ts';
import { type NamespaceInfo, namespaceSelection } from './selection.ts';
import { StatusWriter } from './status-writer.ts';
import { cloudAuths, TokenState } from './token-state.ts';

export type { ReconcilerOptions } from './reconcile-context.ts';
export { RetryableSyncError } from './reconcile-context.ts';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/**
 * The work item that looks for recorded entries no credential claims (a credential deleted
 * while no leader ran). Not a valid RegistryCredential name, so it never collides with one.
 */
export const ORPHANED_ENTRIES_KEY = '*orphaned-entries';

/** Conflicts are retried on this period: an adopt annotation on a Secret we don't watch. */
export const CONFLICT_RETRY_MS = 60_000;

/** A credential's full reconcile between its preparation and its fan-out's end. */
interface Plan {
  name: string;
  current: RegistryCredential;
  log: Logger;
  selects: (ns: NamespaceInfo) => boolean;
  targets: Set<string>;
  secretName: string;
  resolved: ResolvedWithTokens | undefined;
  /** What its Secrets hold; undefined when nothing is written (no credentials resolved). */
  json: string | undefined;
  credentialError: CredentialError | undefined;
  registryStatuses: RegistryCredentialStatus['registries'];
  nextAttemptAt: Date | undefined;
  writes: Writes;
  cleanupErrors: string[];
  outcomes: Map<string, NamespaceOutcome>;
}

/** The plans due in one namespace of a fan-out, and who waits for them to be written. */
interface DueHere {
  plans: Plan[];
  /** Fan-outs that joined this namespace, told once it is done. */
  done?: Array<() => void>;
}

/** A fan-out in progress: the namespaces it has not started yet. */
interface FanOutRun {
  waiting: Map<string, DueHere>;
}

export class Reconciler {
  /** One namespace at a time, shared with the per-namespace fast path. */
  readonly namespaces: NamespaceSync;
  private readonly ctx: ReconcileContext;
  private readonly cleanup: Cleanup;
  private readonly status: StatusWriter;
  private readonly tokenState: TokenState;
  /**
   * Credentials whose full reconcile runs: 'preparing' (before its fan-out, which will read
   * every target from the caches), then the targets its fan-out has not started yet.
   */
  private readonly covering = new Map<string, 'preparing' | Set<string>>();
  /** Fan-outs in progress, which a credential due meanwhile joins (fanOut). */
  private readonly running = new Set<FanOutRun>();

  constructor(options: ReconcilerOptions) {
    this.ctx = { ...options, now: options.now ?? (() => new Date()) };
    this.namespaces = new NamespaceSync(this.ctx);
    this.cleanup = new Cleanup(this.ctx);
    this.status = new StatusWriter(this.ctx);
    this.tokenState = new TokenState(this.ctx);
  }

  /** A full reconcile of one credential (reconcileTogether of one). */
  async reconcile(name: string): Promise<ReconcileResult> {
    const [result] = await this.reconcileTogether([name]);
    if (result?.status === 'rejected') throw result.reason;
    return result?.status === 'fulfilled' ? result.value : {};
  }

  /**
   * Full reconciles of several credentials due together (ADR 0014, "Namespace-major
   * writes"): each one's finalizer, resolution, targets and cleanup as alone; then ONE
   * fan-out over the union of their targets where, per namespace, each one's Secret is
   * written and then each ServiceAccount gets one write with every one's entry; then each
   * one's make-before-break cleanup and status from its own outcomes. Results in the order
   * of `names`, each as reconcile() would have settled alone.
   */
  async reconcileTogether(
    names: readonly string[],
  ): Promise<Array<PromiseSettledResult<ReconcileResult>>> {
    for (const name of names) this.covering.set(name, 'preparing');
    const prepared = await Promise.allSettled(names.map((name) => this.prepare(name)));
    const plans: Plan[] = [];
    for (const p of prepared) {
      if (p.status === 'fulfilled' && 'targets' in p.value) plans.push(p.value);
    }
    for (const [i, p] of prepared.entries()) {
      if (p.status !== 'fulfilled' || !('targets' in p.value))
        this.covering.delete(names[i] as string);
    }
    try {
      await this.fanOut(plans);
    } finally {
      for (const plan of plans) this.covering.delete(plan.name);
    }
    return Promise.allSettled(
      prepared.map(async (p) => {
        if (p.status === 'rejected') throw p.reason;
        return 'targets' in p.value ? this.finish(p.value) : p.value;
      }),
    );
  }

  /**
   * True when a full reconcile of `name` now running will still read `ns` from the caches
   * before writing it: it has not reached its fan-out, or its fan-out has not started `ns`.
   * A ServiceAccount event there needs no fast path for it (event-mapping.ts).
   */
  covers(name: string, ns: string): boolean {
    const state = this.covering.get(name);
    return state === 'preparing' || state?.has(ns) === true;
  }

  /** Everything before the fan-out: a plan for it, or the reconcile's result without one. */
  private async prepare(name: string): Promise<Plan | ReconcileResult> {
    const { view } = this.ctx;
    if (name === ORPHANED_ENTRIES_KEY) {
      await this.sweepOrphanedEntries();
      return {};
    }
    const cred = view.credential(name);
    if (!cred) {
      this.namespaces.forget(name);
      this.ctx.onStatus?.(name, undefined);
      // Gone without our finalizer having run (removed by hand): garbage collection deletes
      // the Secrets through their ownerReference; the entries we recorded are ours to remove.
      await this.sweepOrphanedEntries();
      return {};
    }
    const log = this.ctx.log.child({ registryCredential: name });
    if (cred.metadata.deletionTimestamp) {
      await this.cleanup.finalize(cred, log);
      return {};
    }
    if (cred.spec.suspend) {
      await this.status.write(cred, suspendedStatus(cred, this.ctx.now()));
      return {};
    }
    const current = await this.ensureFinalizer(cred);

    let selects: (ns: NamespaceInfo) => boolean;
    try {
      if (current.spec.refreshInterval !== undefined) parseDuration(current.spec.refreshInterval);
      selects = namespaceSelection(current.spec);
    } catch (error) {
      if (!(error instanceof CredentialError)) throw error;
      await this.writeFailed(current, error);
      return {};
    }

    const targets = new Set<string>();
    for (const ns of view.namespaces()) if (selects(ns)) targets.add(ns.name);
    const secretName = effectiveSecretName(current);

    let resolved: ResolvedWithTokens | undefined;
    let credentialError: CredentialError | undefined;
    let registryStatuses = current.status?.registries;
    // When to try the cloud again, kept even when nothing is written for lack of any token.
    let nextAttemptAt: Date | undefined;
    try {
      resolved = await resolveFor(this.ctx, current, (source, ok, error, detail) => {
        this.ctx.onRefresh?.(name, source, ok);
        if (ok) log.info('token refreshed', { source });
        else {
          log.warn('token refresh failed', { source, error: error ?? 'unknown error' });
          // The SDK's own words, for whoever debugs the sentence above (scrubbed like it).
          if (detail) log.debug('token refresh failed: the cloud SDK said', { source, detail });
        }
      });
      registryStatuses = resolved.registries;
      nextAttemptAt = resolved.nextAttemptAt;
      const first = resolved.refreshErrors[0];
      const wroteBefore = view.managedSecretsOf(name).length > 0;
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

    const writes = noWrites();
    // Namespaces that left the targets go first (a revocation should not wait for a fan-out).
    const cleanupErrors = [
      ...(await this.cleanup.removeStale(
        current,
        { selects, secretName, replaced: () => false },
        writes,
      )),
      ...(await this.cleanup.removeDanglingEntries(name, selects, secretName, writes)),
    ];
    let json: string | undefined;
    if (resolved) {
      try {
        json = buildDockerConfigJson(resolved.entries);
        // Built once per reconcile; every namespace gets the same bytes.
        desiredSecret(current, 'probe', json);
        this.namespaces.remember(name, json);
        // Saved where tenants cannot write before any namespace is given them (a new leader
        // adopts them from there).
        await this.tokenState.save(current, cloudAuths(resolved));
      } catch (error) {
        if (!(error instanceof CredentialError)) throw error;
        await this.writeFailed(current, error);
        return {};
      }
    }
    return {
      name,
      current,
      log,
      selects,
      targets,
      secretName,
      resolved,
      json,
      credentialError,
      registryStatuses,
      nextAttemptAt,
      writes,
      cleanupErrors,
      outcomes: new Map(),
    };
  }

  /**
   * One fan-out over the union of the plans' targets, namespace by namespace: in each, the
   * Secrets of the plans that need a write there, then one write per ServiceAccount
   * (NamespaceSync.syncTogether). k credentials run min(k, workers) times the fan-out
   * concurrency of namespaces at once: what k workers did apart.
   *
   * A fan-out already running (credentials that became due a moment earlier: a burst whose
   * watch events arrived apart) is joined for the namespaces it has not started: there its
   * task writes these plans' Secrets and entries with its own, one ServiceAccount write for
   * all (ADR 0014, "Late credentials join"). The namespaces it has passed, or does not
   * target, this fan-out writes itself.
   */
  private async fanOut(plans: readonly Plan[]): Promise<void> {
    const writing = plans.filter((plan) => plan.json !== undefined);
    const own = new Map<string, DueHere>();
    const joined: Array<Promise<void>> = [];
    for (const plan of writing) {
      const pending = new Set<string>();
      for (const ns of plan.targets) {
        if (this.namespaces.inSync(plan.current, ns, plan.secretName, plan.json as string)) {
          plan.outcomes.set(ns, { kind: 'synced', wrote: 0 });
          continue;
        }
        pending.add(ns);
        const due = own.get(ns);
        if (due) due.plans.push(plan);
        else own.set(ns, { plans: [plan] });
      }
      this.covering.set(plan.name, pending);
    }
    for (const plan of plans) if (plan.json === undefined) this.covering.delete(plan.name);
    for (const [ns, due] of own) {
      const running = this.waitingIn(ns, due.plans);
      if (!running) continue;
      own.delete(ns);
      running.plans.push(...due.plans);
      joined.push(
        new Promise<void>((resolve) => {
          running.done = [...(running.done ?? []), resolve];
        }),
      );
    }
    if ((writing.length > 1 && own.size > 0) || joined.length > 0) {
      // Batches and joins decide how many ServiceAccount writes a burst costs (ADR 0014).
      this.ctx.log.info('fanning out together', {
        registryCredentials: writing.map((plan) => plan.name).join(','),
        namespaces: own.size,
        joinedNamespaces: joined.length,
      });
    }
    if (own.size === 0) {
      await Promise.all(joined);
      return;
    }
    const run: FanOutRun = { waiting: own };
    this.running.add(run);
    const lanes = Math.max(1, Math.min(writing.length, this.ctx.workers ?? 1));
    const queue = new PQueue({ concurrency: this.ctx.fanoutConcurrency * lanes });
    for (const ns of [...own.keys()].sort()) {
      void queue.add(async () => {
        // A burst of new namespaces on the fast path goes first (fast-path-first.ts).
        const leave = await this.ctx.fastPathFirst?.turn();
        // Taken when it starts: a plan that joined until now is written here too.
        const due = run.waiting.get(ns) as DueHere;
        run.waiting.delete(ns);
        try {
          for (const plan of due.plans) {
            const state = this.covering.get(plan.name);
            if (state !== 'preparing') state?.delete(ns);
          }
          const outcomes = await this.namespaces.syncTogether(
            ns,
            due.plans.map((plan) => ({
              cred: plan.current,
              secretName: plan.secretName,
              json: plan.json as string,
              writes: plan.writes,
            })),
          );
          due.plans.forEach((plan, i) => {
            plan.outcomes.set(ns, outcomes[i] as NamespaceOutcome);
          });
        } finally {
          leave?.();
          for (const resolve of due.done ?? []) resolve();
        }
      });
    }
    try {
      await queue.onIdle();
    } finally {
      this.running.delete(run);
    }
    await Promise.all(joined);
  }

  /**
   * A running fan-out's entry for `ns` that these plans can join: it has not started `ns`,
   * and none of its plans is one of theirs (a credential never runs twice at once, but its
   * own entry is never joined).
   */
  private waitingIn(ns: string, plans: readonly Plan[]): DueHere | undefined {
    for (const run of this.running) {
      const due = run.waiting.get(ns);
      if (due && !due.plans.some((p) => plans.some((q) => q.name === p.name))) return due;
    }
    return undefined;
  }

  /** Everything after the fan-out, from the plan's own outcomes: as if it had run alone. */
  private async finish(plan: Plan): Promise<ReconcileResult> {
    const { view } = this.ctx;
    const { current, selects, secretName, targets, outcomes, resolved, writes, log } = plan;
    const { credentialError, registryStatuses, nextAttemptAt, cleanupErrors } = plan;
    // A Secret under an old secretName leaves a namespace only once the new one is in place
    // there, after the writes (make before break: its ServiceAccounts never lose a working pull
    // secret, and a namespace where the new name conflicts or failed keeps the old one).
    const replaced = (ns: string) => this.namespaces.holdsCurrent(current, ns, secretName);
    cleanupErrors.push(
      ...(await this.cleanup.removeStale(current, { selects, secretName, replaced }, writes)),
    );

    const status = computeStatus(
      current,
      {
        targets,
        outcomes,
        resolvedRegistries: resolved?.registries.length,
        refreshErrors: resolved?.refreshErrors ?? [],
        registries: registryStatuses,
        credentialError,
        cleanupErrors,
        namespaceExists: (ns) => view.namespace(ns) !== undefined,
      },
      this.ctx.now(),
    );
    // The next moment a token is refreshed, or retried after a failure.
    if (nextAttemptAt) status.nextRefreshAt = conditionTime(nextAttemptAt);
    // A refresh request is acted on once the credentials were resolved with it.
    const requested = current.metadata.annotations?.[REFRESH_REQUESTED_ANNOTATION];
    const acted = resolved || credentialError?.reason === 'RefreshFailed' ? requested : undefined;
    const lastRefreshRequest = acted ?? current.status?.lastRefreshRequest;
    if (lastRefreshRequest !== undefined) status.lastRefreshRequest = lastRefreshRequest;
    await this.status.write(current, status);
    if (writes.secrets + writes.serviceAccounts + writes.deleted > 0) {
      log.info('synced', { ...writes, targets: targets.size });
    }

    // The schedule, computed apart from failures: the next refresh and the conflict recheck.
    const conflicts = [...outcomes.values()].some((o) => o.kind === 'failed' && !o.transient);
    const delays: number[] = [];
    if (conflicts) delays.push(CONFLICT_RETRY_MS);
    if (nextAttemptAt) {
      delays.push(Math.max(1_000, nextAttemptAt.getTime() - this.ctx.now().getTime()));
    }
    const requeueAfterMs = delays.length > 0 ? Math.min(...delays) : undefined;
    const transient = [...outcomes.values()].some((o) => o.kind === 'failed' && o.transient);
    if (transient || cleanupErrors.length > 0) {
      throw new RetryableSyncError(
        `some namespaces failed and will be retried: ${status.failedNamespaces?.map((f) => f.name).join(', ') ?? ''}`,
        requeueAfterMs,
      );
    }
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {};
  }

  private async sweepOrphanedEntries(): Promise<void> {
    const errors = await this.cleanup.sweepOrphanedEntries();
    if (errors.length > 0) {
      throw new RetryableSyncError(`orphaned entries remain in ${errors.length} namespace(s)`);
    }
  }

  private async writeFailed(cred: RegistryCredential, error: CredentialError): Promise<void> {
    await this.status.write(cred, failedStatus(cred, error.reason, error.message, this.ctx.now()));
  }

  private async ensureFinalizer(cred: RegistryCredential): Promise<RegistryCredential> {
    const finalizers = cred.metadata.finalizers ?? [];
    if (finalizers.includes(CLEANUP_FINALIZER)) return cred;
    const updated = await this.ctx.api.setCredentialFinalizers(cred, [
      ...finalizers,
      CLEANUP_FINALIZER,
    ]);
    this.ctx.view.wroteCredential(updated);
    return updated;
  }
}

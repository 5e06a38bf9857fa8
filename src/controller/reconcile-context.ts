// What every part of the controller works with: the cache view, the API, the Event recorder,
// the source policy and the token cache, passed once from the wiring. Also the one way a
// credential's registries are resolved, shared by the full reconcile and the fast path.
import type { RegistryCredential, RegistryCredentialStatus } from '../api/types.ts';
import type { CloudEndpoints } from '../credentials/cloud/cloud-token.ts';
import {
  type ResolvedWithTokens,
  resolveCredentials,
  type SourcePolicy,
} from '../credentials/resolve.ts';
import type { TokenCache } from '../credentials/token-cache.ts';
import type { EventRecorder } from '../kube/events.ts';
import type { Logger } from '../observability/logger.ts';
import type { ClusterView, ControllerApi } from './cluster-view.ts';
import type { FastPathFirst } from './fast-path-first.ts';
import { TokenState } from './token-state.ts';

export type EventSink = Pick<EventRecorder, 'record'>;

export type CloudSource = 'ecr' | 'gcp' | 'acr';

export interface ReconcilerOptions {
  view: ClusterView;
  api: ControllerApi;
  events: EventSink;
  log: Logger;
  policy: SourcePolicy;
  /** Namespace writes in flight at once for one RegistryCredential. */
  fanoutConcurrency: number;
  /**
   * Full-reconcile workers (default 1): a fan-out of k credentials reconciled together runs
   * min(k, workers) × fanoutConcurrency namespaces at once, what k workers did apart.
   */
  workers?: number;
  /** Cloud tokens, one cloud call per refresh whatever the number of namespaces. */
  tokens: TokenCache;
  /** Endpoint overrides for the cloud SDKs (tests, air-gapped mirrors). */
  endpoints?: CloudEndpoints;
  onRefresh?: (credential: string, source: CloudSource, ok: boolean) => void;
  now?: () => Date;
  /** Called after each reconcile with the status it settled on (metrics). */
  onStatus?: (name: string, status: RegistryCredentialStatus | undefined) => void;
  /** Fan-outs yield to a backlog of new namespaces on the fast path (fast-path-first.ts). */
  fastPathFirst?: FastPathFirst;
}

export interface ReconcileContext extends ReconcilerOptions {
  now: () => Date;
}

/** Writes made by one reconcile, for its log line. */
export interface Writes {
  secrets: number;
  serviceAccounts: number;
  deleted: number;
}

export function noWrites(): Writes {
  return { secrets: 0, serviceAccounts: 0, deleted: 0 };
}

/**
 * Thrown after status is written when some namespace failed for a reason worth retrying. It
 * carries the reconcile's own schedule (next refresh, conflict recheck): the worker requeues at
 * the earlier of that and the failure backoff.
 */
export class RetryableSyncError extends Error {
  override name = 'RetryableSyncError';
  readonly requeueAfterMs: number | undefined;

  constructor(message: string, requeueAfterMs?: number) {
    super(message);
    this.requeueAfterMs = requeueAfterMs;
  }
}

/**
 * The credential's registries resolved from the caches and the token cache. `onRefresh` is
 * told of every cloud call (the full reconcile logs them; the fast path leaves that to it).
 */
export function resolveFor(
  ctx: ReconcileContext,
  cred: RegistryCredential,
  onRefresh?: (source: CloudSource, ok: boolean, error?: string, detail?: string) => void,
): Promise<ResolvedWithTokens> {
  return resolveCredentials(cred, ctx.view, ctx.policy, {
    tokens: ctx.tokens,
    now: ctx.now(),
    // After a restart, the token saved in our own namespace; never a tenant's copy.
    written: () => new TokenState(ctx).saved(cred),
    ...(ctx.endpoints ? { endpoints: ctx.endpoints } : {}),
    ...(onRefresh ? { onRefresh } : {}),
  });
}

// The one way the operator changes a ServiceAccount: read-modify-write with the
// resourceVersion. A PUT of the whole object is safe because a 409 makes us re-read and
// re-apply our one change to what the other writer left (ServiceAccount.imagePullSecrets has
// no merge key, so a patch of the wrong kind would replace everyone's entries:
// docs/adr/0004-serviceaccount-writes.md).
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { KubeApiError } from './rest.ts';

/** Conflicts tolerated before giving up (the caller's reconcile retries later). */
export const SERVICE_ACCOUNT_ATTEMPTS = 5;

export interface ServiceAccountWriter {
  readServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined>;
  replaceServiceAccount(sa: V1ServiceAccount): Promise<V1ServiceAccount>;
}

/**
 * The change to make: the ServiceAccount as it should be written, or undefined when it
 * needs nothing. Called again on the fresh object after every conflict.
 */
export type ServiceAccountEdit = (sa: V1ServiceAccount) => V1ServiceAccount | undefined;

export type ServiceAccountUpdate =
  | { kind: 'written'; sa: V1ServiceAccount }
  | { kind: 'unchanged' }
  /** Deleted before or while we wrote: nothing of ours can be on it. */
  | { kind: 'gone' };

/**
 * Applies `edit` to `cached`, re-reading and re-applying it after each conflict. Throws a
 * 409 KubeApiError when the object kept changing for every attempt, and any other API error.
 */
export async function updateServiceAccount(
  api: ServiceAccountWriter,
  cached: V1ServiceAccount,
  edit: ServiceAccountEdit,
): Promise<ServiceAccountUpdate> {
  const ns = cached.metadata?.namespace ?? '';
  const name = cached.metadata?.name ?? '';
  let sa: V1ServiceAccount | undefined = cached;
  for (let attempt = 0; attempt < SERVICE_ACCOUNT_ATTEMPTS; attempt++) {
    if (!sa) return { kind: 'gone' };
    const next = edit(sa);
    if (next === undefined) return { kind: 'unchanged' };
    try {
      return { kind: 'written', sa: await api.replaceServiceAccount(next) };
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return { kind: 'gone' };
      if (!(error instanceof KubeApiError && error.conflict)) throw error;
      sa = await api.readServiceAccount(ns, name);
    }
  }
  throw new KubeApiError(409, 'Conflict', `ServiceAccount ${ns}/${name} kept changing; will retry`);
}

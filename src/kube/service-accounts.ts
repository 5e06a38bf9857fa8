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
  /** Aborts when this client must stop writing (KubeApi.withSignal: leadership lost). */
  readonly abortSignal?: AbortSignal | undefined;
}

/**
 * The change to make: the ServiceAccount as it should be written, or undefined when it
 * needs nothing. Called again on the fresh object after every conflict.
 */
export type ServiceAccountEdit = (sa: V1ServiceAccount) => V1ServiceAccount | undefined;

export type ServiceAccountUpdate =
  /** merged: the write was another caller's too (ServiceAccountWrites): count it once. */
  | { kind: 'written'; sa: V1ServiceAccount; merged?: boolean }
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

interface Waiting {
  cached: V1ServiceAccount;
  edit: ServiceAccountEdit;
  resolve: (update: ServiceAccountUpdate) => void;
  reject: (error: unknown) => void;
}

/**
 * updateServiceAccount for many writers of the same ServiceAccounts (several
 * RegistryCredentials targeting one namespace): one write per ServiceAccount at a time, and
 * the edits that arrive while it is in flight go together in the next write, applied to what
 * the previous one returned. Without it, each credential's sync PUT the same object at once:
 * all but one got a 409, a GET and a second PUT (bench --scale, scenario 2). Each caller's
 * edit is applied as it would be alone; a caller whose edit rode on another's write gets
 * `merged: true` (count the write once).
 */
export class ServiceAccountWrites {
  readonly #api: ServiceAccountWriter;
  readonly #queues = new Map<string, Waiting[]>();
  readonly #signal: AbortSignal | undefined;

  /**
   * `signal`: leadership. When it aborts, every queued edit is rejected and none is sent (a
   * write already in flight is cut by the API client's own signal); later calls are refused.
   * Default: the client's own (the leader's KubeApi, made with withSignal(leadership)).
   */
  constructor(api: ServiceAccountWriter, signal: AbortSignal | undefined = api.abortSignal) {
    this.#api = api;
    this.#signal = signal;
    signal?.addEventListener(
      'abort',
      () => {
        const error = abortError(signal);
        for (const queue of this.#queues.values()) {
          for (const w of queue.splice(0)) w.reject(error);
        }
      },
      { once: true },
    );
  }

  update(cached: V1ServiceAccount, edit: ServiceAccountEdit): Promise<ServiceAccountUpdate> {
    const key = `${cached.metadata?.namespace ?? ''}/${cached.metadata?.name ?? ''}`;
    if (this.#signal?.aborted) return Promise.reject(abortError(this.#signal));
    return new Promise<ServiceAccountUpdate>((resolve, reject) => {
      const queue = this.#queues.get(key);
      const waiting = { cached, edit, resolve, reject };
      if (queue) {
        queue.push(waiting);
        return;
      }
      this.#queues.set(key, [waiting]);
      void this.#drain(key);
    });
  }

  async #drain(key: string): Promise<void> {
    let latest: V1ServiceAccount | undefined;
    // resourceVersions older than `latest`: those our writes replaced, and those the callers
    // of a written batch had cached. They are opaque: only equality can be compared.
    const superseded = new Set<string>();
    for (;;) {
      // Edits queued in the same turn (several syncs finishing their Secrets) join this write.
      await new Promise<void>((r) => setImmediate(r));
      const queue = this.#queues.get(key) ?? [];
      const batch = queue.splice(0);
      if (batch.length === 0 || this.#signal?.aborted) {
        this.#queues.delete(key);
        return;
      }
      const first = batch[0] as Waiting;
      // What our last write returned, unless a caller cached a version we neither wrote nor
      // wrote over: that one came after (a tenant's edit the watch brought), or before and
      // the PUT's 409 says so. Starting from `latest` then could find every edit done already
      // and answer unchanged without asking the server.
      const rv = (sa: V1ServiceAccount) => sa.metadata?.resourceVersion ?? '';
      const newer = latest
        ? batch.findLast(
            (w) => rv(w.cached) !== rv(latest as V1ServiceAccount) && !superseded.has(rv(w.cached)),
          )
        : undefined;
      const base = newer?.cached ?? latest ?? first.cached;
      let changed: Waiting[] = [];
      let editedFrom = '';
      try {
        const result = await updateServiceAccount(this.#api, base, (sa) => {
          editedFrom = rv(sa);
          changed = [];
          let next = sa;
          for (const w of batch) {
            const edited = w.edit(next);
            if (edited === undefined) continue;
            next = edited;
            changed.push(w);
          }
          return changed.length > 0 ? next : undefined;
        });
        latest = result.kind === 'written' ? result.sa : undefined;
        if (latest) {
          superseded.add(editedFrom);
          superseded.add(rv(base));
          for (const w of batch) superseded.add(rv(w.cached));
          superseded.delete(rv(latest));
        } else {
          superseded.clear();
        }
        for (const w of batch) {
          if (result.kind !== 'written') w.resolve(result);
          else if (!changed.includes(w)) w.resolve({ kind: 'unchanged' });
          else w.resolve({ ...result, merged: w !== changed[0] });
        }
      } catch (error) {
        latest = undefined;
        superseded.clear();
        for (const w of batch) w.reject(error);
      }
    }
  }
}

function abortError(signal: AbortSignal): KubeApiError {
  const why = signal.reason instanceof Error ? signal.reason.message : 'stopped';
  return new KubeApiError(0, 'Aborted', `ServiceAccount write not sent: ${why}`);
}

// Every call the operator makes to the API server outside the informers goes through here, so
// writes are counted by resource and verb and failures become typed, credential-free errors.
// The transport is rest.ts. Leader election and the API probe use client-node's generated
// clients, with requestOptions and toKubeApiError below.
import {
  ApiException,
  type ConfigurationOptions,
  type CoreV1Event,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import {
  GROUP,
  PLURAL,
  type RegistryCredential,
  type RegistryCredentialStatus,
  VERSION,
} from '../api/types.ts';
import { safeMessage } from '../observability/redact.ts';
import { KubeApiError, KubeRest, type RestRequest, segment } from './rest.ts';

export { KubeApiError } from './rest.ts';

export type ApiVerb = 'create' | 'update' | 'patch' | 'delete' | 'get';

/** Counts each request by resource and verb; the operator plugs its metrics in here. */
export type RequestObserver = (resource: string, verb: ApiVerb, code: number) => void;

export const FIELD_MANAGER = 'regcred-operator';

/**
 * Options for client-node's generated clients (leader election, the API probe): the request
 * aborts when `signal` fires.
 */
export function requestOptions(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [
      {
        pre: (context: RequestContext) => {
          context.setSignal(signal);
          return new Observable(Promise.resolve(context));
        },
        post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

interface StatusBody {
  reason?: string;
  message?: string;
}

function parseStatusBody(body: unknown): StatusBody {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return body && typeof body === 'object' ? (body as StatusBody) : {};
}

/** Turns whatever client-node threw into a KubeApiError (code 0: no HTTP answer). */
export function toKubeApiError(error: unknown, what: string): KubeApiError {
  if (error instanceof KubeApiError) return error;
  if (error instanceof ApiException) {
    const status = parseStatusBody(error.body);
    return new KubeApiError(
      error.code,
      status.reason ?? '',
      safeMessage(`${what}: ${status.message ?? `HTTP ${error.code}`}`),
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new KubeApiError(0, 'Unreachable', safeMessage(`${what}: ${message}`));
}

const CORE = '/api/v1';
const CREDENTIALS = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
const MERGE_PATCH = 'application/merge-patch+json';
const WRITE = { fieldManager: FIELD_MANAGER };

function namespaced(namespace: string, resource: string, name?: string): string {
  const base = `${CORE}/namespaces/${segment(namespace)}/${resource}`;
  return name === undefined ? base : `${base}/${segment(name)}`;
}

export class KubeApi {
  private readonly rest: KubeRest;
  private readonly observe: RequestObserver;
  /** Aborts every call of this client (leadership lost, shutdown). */
  private readonly signal: AbortSignal | undefined;

  constructor(
    kc: KubeConfig | KubeRest,
    observe: RequestObserver = () => {},
    signal?: AbortSignal,
  ) {
    this.rest = kc instanceof KubeRest ? kc : new KubeRest(kc);
    this.observe = observe;
    this.signal = signal;
  }

  /**
   * The same client, whose calls all end when `signal` aborts: a request in flight is cut and
   * no new one starts (one writer: nothing is written after leadership is lost).
   */
  withSignal(signal: AbortSignal): KubeApi {
    return new KubeApi(this.rest, this.observe, signal);
  }

  /** The signal given to withSignal: its writers (ServiceAccountWrites) stop queueing on it. */
  get abortSignal(): AbortSignal | undefined {
    return this.signal;
  }

  private async call<T>(
    resource: string,
    verb: ApiVerb,
    what: string,
    req: RestRequest,
  ): Promise<T> {
    if (this.signal?.aborted) {
      throw new KubeApiError(0, 'Aborted', `${what}: not sent, this client was stopped`);
    }
    try {
      const signal =
        this.signal && req.signal
          ? AbortSignal.any([this.signal, req.signal])
          : (this.signal ?? req.signal);
      const result = await this.rest.send<T>(signal ? { ...req, signal } : req, what);
      this.observe(resource, verb, 200);
      return result;
    } catch (error) {
      const apiError = toKubeApiError(error, what);
      this.observe(resource, verb, apiError.code);
      throw apiError;
    }
  }

  createSecret(secret: V1Secret): Promise<V1Secret> {
    const namespace = secret.metadata?.namespace ?? '';
    return this.call('secrets', 'create', `create Secret ${namespace}/${secret.metadata?.name}`, {
      method: 'POST',
      path: namespaced(namespace, 'secrets'),
      query: WRITE,
      body: secret,
    });
  }

  /** Replaces a Secret; metadata.resourceVersion makes it conditional. */
  replaceSecret(secret: V1Secret): Promise<V1Secret> {
    const namespace = secret.metadata?.namespace ?? '';
    const name = secret.metadata?.name ?? '';
    return this.call('secrets', 'update', `update Secret ${namespace}/${name}`, {
      method: 'PUT',
      path: namespaced(namespace, 'secrets', name),
      query: WRITE,
      body: secret,
    });
  }

  async readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.call<V1Secret>('secrets', 'get', `get Secret ${namespace}/${name}`, {
        method: 'GET',
        path: namespaced(namespace, 'secrets', name),
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return undefined;
      throw error;
    }
  }

  /** Deletes a Secret only if it is still the object we saw (uid precondition); gone is fine. */
  async deleteSecret(namespace: string, name: string, uid?: string): Promise<void> {
    try {
      await this.call('secrets', 'delete', `delete Secret ${namespace}/${name}`, {
        method: 'DELETE',
        path: namespaced(namespace, 'secrets', name),
        body: uid ? { preconditions: { uid } } : {},
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return;
      throw error;
    }
  }

  async readServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined> {
    try {
      return await this.call<V1ServiceAccount>(
        'serviceaccounts',
        'get',
        `get ServiceAccount ${namespace}/${name}`,
        { method: 'GET', path: namespaced(namespace, 'serviceaccounts', name) },
      );
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return undefined;
      throw error;
    }
  }

  /** Replaces a ServiceAccount; its resourceVersion makes this a safe read-modify-write. */
  replaceServiceAccount(sa: V1ServiceAccount): Promise<V1ServiceAccount> {
    const namespace = sa.metadata?.namespace ?? '';
    const name = sa.metadata?.name ?? '';
    return this.call('serviceaccounts', 'update', `update ServiceAccount ${namespace}/${name}`, {
      method: 'PUT',
      path: namespaced(namespace, 'serviceaccounts', name),
      query: WRITE,
      body: sa,
    });
  }

  readCredential(name: string): Promise<RegistryCredential> {
    return this.call(PLURAL, 'get', `get RegistryCredential ${name}`, {
      method: 'GET',
      path: `${CREDENTIALS}/${segment(name)}`,
    });
  }

  /** Sets metadata.finalizers, conditional on the resourceVersion we computed them from. */
  setCredentialFinalizers(
    cred: RegistryCredential,
    finalizers: string[],
  ): Promise<RegistryCredential> {
    const name = cred.metadata.name ?? '';
    return this.call(PLURAL, 'patch', `update finalizers of RegistryCredential ${name}`, {
      method: 'PATCH',
      path: `${CREDENTIALS}/${segment(name)}`,
      query: WRITE,
      contentType: MERGE_PATCH,
      body: { metadata: { finalizers, resourceVersion: cred.metadata.resourceVersion } },
    });
  }

  /** Writes the whole status (a merge patch replaces lists such as conditions as a unit). */
  patchCredentialStatus(
    name: string,
    status: RegistryCredentialStatus,
  ): Promise<RegistryCredential> {
    return this.call(PLURAL, 'patch', `update status of RegistryCredential ${name}`, {
      method: 'PATCH',
      path: `${CREDENTIALS}/${segment(name)}/status`,
      query: WRITE,
      contentType: MERGE_PATCH,
      // null clears fields that a previous status had and this one lacks.
      body: {
        status: {
          nextRefreshAt: null,
          failedNamespaces: null,
          failedNamespaceCount: null,
          missingNamespaces: null,
          registries: null,
          targetNamespaces: null,
          syncedNamespaces: null,
          ...status,
        },
      },
    });
  }

  createEvent(event: CoreV1Event): Promise<CoreV1Event> {
    const namespace = event.metadata.namespace ?? 'default';
    return this.call('events', 'create', 'create Event', {
      method: 'POST',
      path: namespaced(namespace, 'events'),
      body: event,
    });
  }

  patchEvent(namespace: string, name: string, patch: Partial<CoreV1Event>): Promise<CoreV1Event> {
    return this.call('events', 'patch', 'update Event', {
      method: 'PATCH',
      path: namespaced(namespace, 'events', name),
      contentType: MERGE_PATCH,
      body: patch,
    });
  }
}

// Every call the operator makes to the API server outside the informers goes through here, so
// writes are counted by resource and verb and failures become typed, credential-free errors.
import {
  ApiException,
  type ConfigurationOptions,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  PatchStrategy,
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

export type ApiVerb = 'create' | 'update' | 'patch' | 'delete' | 'get';

/** Counts each request by resource and verb; the operator plugs its metrics in here. */
export type RequestObserver = (resource: string, verb: ApiVerb, code: number) => void;

export const FIELD_MANAGER = 'regcred-operator';

/** client-node sets no request timeout: a lost answer would wait for undici's 300 s. */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Per-request options: abort when `signal` fires (default: after REQUEST_TIMEOUT_MS, counted
 * from when the request is sent), and an optional Content-Type (patches). Without a signal the
 * options object is shared: every API call takes this path.
 */
export function requestOptions(
  signal?: AbortSignal,
  contentType?: string,
): ConfigurationOptions<ObservableMiddleware> {
  if (signal) return buildRequestOptions(signal, contentType);
  const key = contentType ?? '';
  let shared = SHARED_OPTIONS.get(key);
  if (!shared) {
    shared = buildRequestOptions(undefined, contentType);
    SHARED_OPTIONS.set(key, shared);
  }
  return shared;
}

const SHARED_OPTIONS = new Map<string, ConfigurationOptions<ObservableMiddleware>>();

function buildRequestOptions(
  signal: AbortSignal | undefined,
  contentType: string | undefined,
): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [
      {
        pre: (context: RequestContext) => {
          context.setSignal(signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS));
          if (contentType) context.setHeaderParam('Content-Type', contentType);
          return new Observable(Promise.resolve(context));
        },
        post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** A failed API call: the HTTP status and a message safe for status conditions and logs. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }

  get notFound(): boolean {
    return this.code === 404;
  }
  get conflict(): boolean {
    return this.code === 409;
  }
  get alreadyExists(): boolean {
    return this.code === 409 && this.reason === 'AlreadyExists';
  }
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

export class KubeApi {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  private readonly observe: RequestObserver;

  constructor(kc: KubeConfig, observe: RequestObserver = () => {}) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.observe = observe;
  }

  private async call<T>(
    resource: string,
    verb: ApiVerb,
    what: string,
    run: () => Promise<T>,
  ): Promise<T> {
    try {
      const result = await run();
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
    return this.call(
      'secrets',
      'create',
      `create Secret ${namespace}/${secret.metadata?.name}`,
      () =>
        this.core.createNamespacedSecret(
          { namespace, body: secret, fieldManager: FIELD_MANAGER },
          requestOptions(),
        ),
    );
  }

  /** Replaces a Secret; metadata.resourceVersion makes it conditional. */
  replaceSecret(secret: V1Secret): Promise<V1Secret> {
    const namespace = secret.metadata?.namespace ?? '';
    const name = secret.metadata?.name ?? '';
    return this.call('secrets', 'update', `update Secret ${namespace}/${name}`, () =>
      this.core.replaceNamespacedSecret(
        {
          name,
          namespace,
          body: secret,
          fieldManager: FIELD_MANAGER,
        },
        requestOptions(),
      ),
    );
  }

  async readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.call('secrets', 'get', `get Secret ${namespace}/${name}`, () =>
        this.core.readNamespacedSecret({ name, namespace }, requestOptions()),
      );
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return undefined;
      throw error;
    }
  }

  /** Deletes a Secret only if it is still the object we saw (uid precondition); gone is fine. */
  async deleteSecret(namespace: string, name: string, uid?: string): Promise<void> {
    try {
      await this.call('secrets', 'delete', `delete Secret ${namespace}/${name}`, () =>
        this.core.deleteNamespacedSecret(
          {
            name,
            namespace,
            body: uid ? { preconditions: { uid } } : {},
          },
          requestOptions(),
        ),
      );
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return;
      throw error;
    }
  }

  async readServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined> {
    try {
      return await this.call(
        'serviceaccounts',
        'get',
        `get ServiceAccount ${namespace}/${name}`,
        () => this.core.readNamespacedServiceAccount({ name, namespace }, requestOptions()),
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
    return this.call(
      'serviceaccounts',
      'update',
      `update ServiceAccount ${namespace}/${name}`,
      () =>
        this.core.replaceNamespacedServiceAccount(
          {
            name,
            namespace,
            body: sa,
            fieldManager: FIELD_MANAGER,
          },
          requestOptions(),
        ),
    );
  }

  readCredential(name: string): Promise<RegistryCredential> {
    return this.call(PLURAL, 'get', `get RegistryCredential ${name}`, () =>
      this.custom.getClusterCustomObject(
        { group: GROUP, version: VERSION, plural: PLURAL, name },
        requestOptions(),
      ),
    ) as Promise<RegistryCredential>;
  }

  /** Sets metadata.finalizers, conditional on the resourceVersion we computed them from. */
  setCredentialFinalizers(
    cred: RegistryCredential,
    finalizers: string[],
  ): Promise<RegistryCredential> {
    const name = cred.metadata.name ?? '';
    return this.call(PLURAL, 'patch', `update finalizers of RegistryCredential ${name}`, () =>
      this.custom.patchClusterCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          name,
          body: { metadata: { finalizers, resourceVersion: cred.metadata.resourceVersion } },
          fieldManager: FIELD_MANAGER,
        },
        requestOptions(undefined, PatchStrategy.MergePatch),
      ),
    ) as Promise<RegistryCredential>;
  }

  /** Writes the whole status (a merge patch replaces lists such as conditions as a unit). */
  patchCredentialStatus(
    name: string,
    status: RegistryCredentialStatus,
  ): Promise<RegistryCredential> {
    return this.call(PLURAL, 'patch', `update status of RegistryCredential ${name}`, () =>
      this.custom.patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          name,
          // null clears fields that a previous status had and this one lacks.
          body: {
            status: {
              nextRefreshAt: null,
              failedNamespaces: null,
              registries: null,
              ...status,
            },
          },
          fieldManager: FIELD_MANAGER,
        },
        requestOptions(undefined, PatchStrategy.MergePatch),
      ),
    ) as Promise<RegistryCredential>;
  }

  createEvent(event: CoreV1Event): Promise<CoreV1Event> {
    const namespace = event.metadata.namespace ?? 'default';
    return this.call('events', 'create', 'create Event', () =>
      this.core.createNamespacedEvent({ namespace, body: event }, requestOptions()),
    );
  }

  patchEvent(namespace: string, name: string, patch: Partial<CoreV1Event>): Promise<CoreV1Event> {
    return this.call('events', 'patch', 'update Event', () =>
      this.core.patchNamespacedEvent(
        { namespace, name, body: patch },
        requestOptions(undefined, PatchStrategy.MergePatch),
      ),
    );
  }
}

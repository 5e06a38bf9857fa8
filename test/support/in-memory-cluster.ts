// An in-memory cluster for unit tests of the controller: a ClusterView whose "caches" are
// always current, and a ControllerApi that stores objects with resourceVersions, answers
// 404/409 as the API server does, and records every call. Integration tests use the real
// API server; this is only the seam the reconciler is built against.
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import type {
  RegistryCredential,
  RegistryCredentialSpec,
  RegistryCredentialStatus,
} from '../../src/api/types.ts';
import type { ClusterView, ControllerApi } from '../../src/controller/cluster-view.ts';
import { managedOwner } from '../../src/controller/ownership.ts';
import { type NamespaceInfo, namespaceInfo } from '../../src/controller/selection.ts';
import { KubeApiError } from '../../src/kube/rest.ts';

export interface ApiCall {
  verb: 'create' | 'update' | 'get' | 'delete' | 'patch';
  resource: 'secrets' | 'serviceaccounts' | 'registrycredentials';
  key: string;
}

function clone<T>(obj: T): T {
  return structuredClone(obj);
}

function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace}/${obj.metadata?.name}`;
}

export class InMemoryCluster implements ClusterView, ControllerApi {
  readonly calls: ApiCall[] = [];
  readonly credentialObjects = new Map<string, RegistryCredential>();
  readonly namespaceObjects = new Map<string, NamespaceInfo>();
  readonly secrets = new Map<string, V1Secret>();
  readonly accounts = new Map<string, V1ServiceAccount>();
  /** Makes the next calls matching `when` fail with `error` (once each). */
  private readonly failures: Array<{ when: (call: ApiCall) => boolean; error: Error }> = [];
  private version = 100;
  private uids = 0;

  // ---- arranging ----

  addNamespace(name: string, labels: Record<string, string> = {}, annotations = {}): void {
    this.namespaceObjects.set(
      name,
      namespaceInfo({ metadata: { name, labels, annotations }, status: { phase: 'Active' } }),
    );
  }

  addServiceAccount(
    namespace: string,
    name = 'default',
    imagePullSecrets: Array<{ name: string }> = [],
    annotations?: Record<string, string>,
  ): V1ServiceAccount {
    const sa: V1ServiceAccount = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        name,
        namespace,
        resourceVersion: this.nextVersion(),
        ...(annotations ? { annotations } : {}),
      },
      imagePullSecrets,
    };
    this.accounts.set(keyOf(sa), sa);
    return sa;
  }

  addSecret(secret: V1Secret): V1Secret {
    const stored = clone(secret);
    stored.metadata = {
      ...stored.metadata,
      resourceVersion: this.nextVersion(),
      uid: stored.metadata?.uid ?? `uid-${++this.uids}`,
    };
    this.secrets.set(keyOf(stored), stored);
    return stored;
  }

  addCredential(
    name: string,
    spec: RegistryCredentialSpec,
    extra: Partial<RegistryCredential['metadata']> = {},
  ): RegistryCredential {
    const cred: RegistryCredential = {
      apiVersion: 'regcred.dev/v1alpha1',
      kind: 'RegistryCredential',
      metadata: {
        name,
        uid: `uid-${name}`,
        generation: 1,
        resourceVersion: this.nextVersion(),
        creationTimestamp: new Date('2026-01-01T00:00:00Z'),
        ...extra,
      },
      spec,
    };
    this.credentialObjects.set(name, cred);
    return cred;
  }

  failNext(when: (call: ApiCall) => boolean, error: Error): void {
    this.failures.push({ when, error });
  }

  /** The calls that changed something, as `verb resource key` lines. */
  writes(): string[] {
    return this.calls
      .filter((c) => c.verb !== 'get')
      .map((c) => `${c.verb} ${c.resource} ${c.key}`);
  }

  // ---- ClusterView ----

  credential(name: string): RegistryCredential | undefined {
    return this.credentialObjects.get(name);
  }
  *credentials(): Iterable<RegistryCredential> {
    yield* this.credentialObjects.values();
  }
  *namespaces(): Iterable<NamespaceInfo> {
    yield* this.namespaceObjects.values();
  }
  namespace(name: string): NamespaceInfo | undefined {
    return this.namespaceObjects.get(name);
  }
  serviceAccounts(namespace: string): V1ServiceAccount[] {
    return [...this.accounts.values()].filter((sa) => sa.metadata?.namespace === namespace);
  }
  managedSecret(namespace: string, name: string): V1Secret | undefined {
    const secret = this.secrets.get(`${namespace}/${name}`);
    return secret && managedOwner(secret) ? secret : undefined;
  }
  managedSecretsOf(credential: string): V1Secret[] {
    return [...this.secrets.values()].filter((s) => managedOwner(s) === credential);
  }
  unmanagedSecret(): undefined {
    return undefined; // as before the named-Secret caches have listed: ask the API
  }
  isComplete(): boolean {
    return true;
  }
  sourceSecret(namespace: string, name: string): V1Secret | undefined {
    return this.secrets.get(`${namespace}/${name}`);
  }
  wroteSecret(): void {}
  deletedSecret(): void {}
  wroteServiceAccount(): void {}
  wroteCredential(): void {}

  // ---- ControllerApi ----

  async createSecret(secret: V1Secret): Promise<V1Secret> {
    const key = keyOf(secret);
    this.record({ verb: 'create', resource: 'secrets', key });
    if (!this.namespaceObjects.has(secret.metadata?.namespace ?? '')) {
      throw new KubeApiError(
        404,
        'NotFound',
        `namespaces "${secret.metadata?.namespace}" not found`,
      );
    }
    if (this.secrets.has(key))
      throw new KubeApiError(409, 'AlreadyExists', `secrets "${key}" already exists`);
    return clone(this.addSecret(secret));
  }

  async replaceSecret(secret: V1Secret): Promise<V1Secret> {
    const key = keyOf(secret);
    this.record({ verb: 'update', resource: 'secrets', key });
    const stored = this.secrets.get(key);
    if (!stored) throw new KubeApiError(404, 'NotFound', `secrets "${key}" not found`);
    if (stored.immutable)
      throw new KubeApiError(422, 'Invalid', `Secret "${key}" is invalid: field is immutable`);
    if (secret.metadata?.resourceVersion !== stored.metadata?.resourceVersion) {
      throw new KubeApiError(409, 'Conflict', `the object has been modified`);
    }
    const next = clone(secret);
    next.metadata = {
      ...next.metadata,
      uid: stored.metadata?.uid,
      resourceVersion: this.nextVersion(),
    };
    this.secrets.set(key, next);
    return clone(next);
  }

  async readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    this.record({ verb: 'get', resource: 'secrets', key: `${namespace}/${name}` });
    const secret = this.secrets.get(`${namespace}/${name}`);
    return secret ? clone(secret) : undefined;
  }

  async deleteSecret(namespace: string, name: string, uid?: string): Promise<void> {
    const key = `${namespace}/${name}`;
    this.record({ verb: 'delete', resource: 'secrets', key });
    const stored = this.secrets.get(key);
    if (!stored) return;
    if (uid && stored.metadata?.uid !== uid) {
      throw new KubeApiError(409, 'Conflict', 'Precondition failed: UID in precondition');
    }
    this.secrets.delete(key);
  }

  async readServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined> {
    this.record({ verb: 'get', resource: 'serviceaccounts', key: `${namespace}/${name}` });
    const sa = this.accounts.get(`${namespace}/${name}`);
    return sa ? clone(sa) : undefined;
  }

  async replaceServiceAccount(sa: V1ServiceAccount): Promise<V1ServiceAccount> {
    const key = keyOf(sa);
    this.record({ verb: 'update', resource: 'serviceaccounts', key });
    const stored = this.accounts.get(key);
    if (!stored) throw new KubeApiError(404, 'NotFound', `serviceaccounts "${key}" not found`);
    if (sa.metadata?.resourceVersion !== stored.metadata?.resourceVersion) {
      throw new KubeApiError(409, 'Conflict', 'the object has been modified');
    }
    const next = clone(sa);
    next.metadata = { ...next.metadata, resourceVersion: this.nextVersion() };
    this.accounts.set(key, next);
    return clone(next);
  }

  async setCredentialFinalizers(
    cred: RegistryCredential,
    finalizers: string[],
  ): Promise<RegistryCredential> {
    const name = cred.metadata.name ?? '';
    this.record({ verb: 'patch', resource: 'registrycredentials', key: name });
    const stored = this.credentialObjects.get(name);
    if (!stored) throw new KubeApiError(404, 'NotFound', `registrycredentials "${name}" not found`);
    const next = clone(stored);
    next.metadata = { ...next.metadata, finalizers, resourceVersion: this.nextVersion() };
    if (next.metadata.deletionTimestamp && finalizers.length === 0) {
      this.credentialObjects.delete(name);
    } else {
      this.credentialObjects.set(name, next);
    }
    return clone(next);
  }

  async patchCredentialStatus(
    name: string,
    status: RegistryCredentialStatus,
  ): Promise<RegistryCredential> {
    this.record({ verb: 'patch', resource: 'registrycredentials', key: `${name}/status` });
    const stored = this.credentialObjects.get(name);
    if (!stored) throw new KubeApiError(404, 'NotFound', `registrycredentials "${name}" not found`);
    const next = { ...clone(stored), status: clone(status) };
    next.metadata = { ...next.metadata, resourceVersion: this.nextVersion() };
    this.credentialObjects.set(name, next);
    return clone(next);
  }

  private record(call: ApiCall): void {
    this.calls.push(call);
    const i = this.failures.findIndex((f) => f.when(call));
    if (i >= 0) {
      const [failure] = this.failures.splice(i, 1);
      if (failure) throw failure.error;
    }
  }

  private nextVersion(): string {
    this.version += 1;
    return String(this.version);
  }
}

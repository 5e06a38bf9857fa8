// What the controller reads and writes through: the informer caches behind ClusterView (never
// the API server), and the few API calls it makes. Both are interfaces the controller owns, so
// the reconciler runs against an in-memory view and a recording API in unit tests.
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import type { RegistryCredential } from '../api/types.ts';
import type { SourceSecrets } from '../credentials/resolve.ts';
import type { KubeApi } from '../kube/api.ts';
import type { NamespaceInfo } from './selection.ts';

export interface ClusterView extends SourceSecrets {
  credential(name: string): RegistryCredential | undefined;
  credentials(): Iterable<RegistryCredential>;
  namespaces(): Iterable<NamespaceInfo>;
  namespace(name: string): NamespaceInfo | undefined;
  serviceAccounts(namespace: string): V1ServiceAccount[];
  managedSecret(namespace: string, name: string): V1Secret | undefined;
  managedSecretsOf(credential: string): V1Secret[];
  /**
   * A Secret under a name some credential writes that is not ours: the object, null when the
   * cache knows there is none, undefined when it does not know (ask the API server).
   */
  unmanagedSecret(namespace: string, name: string): V1Secret | null | undefined;
  /** False when the cache keeps `secret` trimmed: read it before writing it back. */
  isComplete(secret: V1Secret): boolean;
  /** Write-through: the caches hold what we just wrote until the watch delivers it. */
  wroteSecret(secret: V1Secret): void;
  deletedSecret(namespace: string, name: string): void;
  wroteServiceAccount(sa: V1ServiceAccount): void;
  wroteCredential(cred: RegistryCredential): void;
}

/** The API calls the controller makes (KubeApi in production). */
export type ControllerApi = Pick<
  KubeApi,
  | 'createSecret'
  | 'replaceSecret'
  | 'readSecret'
  | 'deleteSecret'
  | 'readServiceAccount'
  | 'replaceServiceAccount'
  | 'setCredentialFinalizers'
  | 'patchCredentialStatus'
>;

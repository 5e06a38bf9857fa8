// The RegistryCredential API (regcred.dev/v1alpha1), field for field as in
// crds/regcred.dev_registrycredentials.yaml; test/unit/api-schema.test.ts checks they agree.
import type { V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';

export const GROUP = 'regcred.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'RegistryCredential';
export const PLURAL = 'registrycredentials';

/** Labels, annotations and the finalizer the operator reads or writes. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'regcred-operator';
export const CREDENTIAL_LABEL = 'regcred.dev/credential';
export const IGNORE_ANNOTATION = 'regcred.dev/ignore';
export const ADOPT_ANNOTATION = 'regcred.dev/adopt';
export const REFRESH_REQUESTED_ANNOTATION = 'regcred.dev/refresh-requested-at';
export const CLEANUP_FINALIZER = 'regcred.dev/cleanup';
/** On a ServiceAccount: the imagePullSecrets entries the operator added (comma-separated). */
export const PULL_SECRETS_ANNOTATION = 'regcred.dev/pull-secrets';
/** On the operator's own token-state Secrets: the RegistryCredential whose tokens they keep. */
export const TOKEN_STATE_LABEL = 'regcred.dev/token-state';
/** On a Secret: it may be read as a credential source (the value must be "true"). */
export const SOURCE_LABEL = 'regcred.dev/source';
export const SOURCE_LABEL_VALUE = 'true';
/**
 * On a source Secret, optional: the source kinds that may read it (comma-separated, e.g.
 * `ecr`). A cloud identity Secret limited to its cloud cannot be copied key by key through
 * `basic`'s usernameKey/passwordKey.
 */
export const SOURCE_KINDS_ANNOTATION = 'regcred.dev/source-kinds';

/** Namespaces never targeted unless listed by name in spec.namespaces. */
export const SYSTEM_NAMESPACES: readonly string[] = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
];

export interface SecretReference {
  name: string;
  /** Absent: the operator's own namespace. */
  namespace?: string;
}

export interface SecretKeyReference extends SecretReference {
  key?: string;
}

export interface BasicSource {
  secretRef: SecretReference;
  usernameKey?: string;
  passwordKey?: string;
}

export interface DockerConfigSource {
  secretRef: SecretReference;
}

export interface EcrSource {
  region?: string;
  roleArn?: string;
  credentialsSecretRef?: SecretReference;
}

export interface GcpSource {
  serviceAccountKeySecretRef?: SecretKeyReference;
}

export interface AcrSource {
  tenantId?: string;
  clientId?: string;
  clientSecretRef?: SecretKeyReference;
}

export interface Registry {
  server?: string;
  basic?: BasicSource;
  dockerConfig?: DockerConfigSource;
  ecr?: EcrSource;
  gcp?: GcpSource;
  acr?: AcrSource;
}

export type SourceKind = 'basic' | 'dockerConfig' | 'ecr' | 'gcp' | 'acr';
export const SOURCE_KINDS: readonly SourceKind[] = ['basic', 'dockerConfig', 'ecr', 'gcp', 'acr'];

export interface RegistryCredentialSpec {
  secretName?: string;
  namespaceSelector?: V1LabelSelector;
  namespaces?: string[];
  serviceAccounts?: string[];
  suspend?: boolean;
  /** Always: the Pod webhook sets imagePullPolicy Always on containers using these registries. */
  imagePullPolicy?: 'Always';
  refreshInterval?: string;
  registries: Registry[];
}

/** PullIsolation is advisory (the Pod webhook's report) and never affects Ready. */
export type ConditionType = 'Ready' | 'CredentialsReady' | 'Synced' | 'PullIsolation';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** Reasons a condition may carry; the False ones are API.md's list. */
export type ConditionReason =
  | 'InvalidSpec'
  | 'SourceNotFound'
  | 'SourceForbidden'
  | 'SourceInvalid'
  | 'RefreshFailed'
  | 'Conflict'
  | 'PartiallySynced'
  | 'Suspended'
  | 'NoTargets'
  | 'Ready'
  | 'CredentialsResolved'
  | 'Synced'
  // PullIsolation
  | 'PullPolicyAlways'
  | 'AlwaysPullSeen'
  | 'IfNotPresentSeen'
  | 'NoPodsSeen';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: ConditionReason;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface FailedNamespace {
  name: string;
  reason: ConditionReason;
  message: string;
}

export interface RegistryStatus {
  server: string;
  source: SourceKind;
  refreshedAt?: string;
  expiresAt?: string;
  /** An imported key the kubelet folds into another registry's key (an explicit server's, or a
   * later import's): left out of the Secret so the kubelet's choice never depends on map order. */
  shadowed?: boolean;
}

export interface RegistryCredentialStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  targetNamespaces?: number;
  syncedNamespaces?: number;
  failedNamespaces?: FailedNamespace[];
  /** How many namespaces failed; failedNamespaces lists at most MAX_FAILED_NAMESPACES. */
  failedNamespaceCount?: number;
  /** Names in spec.namespaces that do not exist, at most MAX_MISSING_NAMESPACES. */
  missingNamespaces?: string[];
  registries?: RegistryStatus[];
  nextRefreshAt?: string;
  /** The regcred.dev/refresh-requested-at value last acted on: any other value is new. */
  lastRefreshRequest?: string;
}

export interface RegistryCredential {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: RegistryCredentialSpec;
  status?: RegistryCredentialStatus;
}

export const MAX_FAILED_NAMESPACES = 20;
export const MAX_MISSING_NAMESPACES = 20;
/** status.registries holds at most this many entries (the schema allows 1024). */
export const MAX_STATUS_REGISTRIES = 256;
/** The schema's maxLength of status.registries[].server. */
export const MAX_STATUS_SERVER_LENGTH = 512;
export const MAX_REGISTRIES = 32;
export const MAX_NAMESPACE_NAMES = 1000;

// What the Pod webhook changes in a Pod being created: the pure decision over the Pod, its
// namespace and the cached RegistryCredentials. A credential applies when the reconciler would
// write its Secret and entry there (the same selection functions); its Secret is appended to
// the Pod's imagePullSecrets when missing. The JSON patch only appends: no entry of anyone
// else's is removed, replaced or moved (the ServiceAccount admission plugin has already copied
// the ServiceAccount's list when this runs).
import type { V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { RegistryCredential, RegistryCredentialSpec } from '../api/types.ts';
import { effectiveSecretName, olderCredentialWins } from '../controller/desired.ts';
import { classifySecret, isProvablyOurs } from '../controller/ownership.ts';
import { type NamespaceInfo, namespaceSelection } from '../controller/selection.ts';

/** One RFC 6902 operation; the webhook only ever emits `add`. */
export interface JsonPatchOperation {
  op: 'add';
  path: string;
  value: unknown;
}

/** Where a container sits in the Pod spec, as a JSON pointer names it. */
export type ContainerList = 'containers' | 'initContainers' | 'ephemeralContainers';

/** A container whose image one credential's registries cover, as the Pod arrived. */
export interface PrivateImageUse {
  credential: string;
  list: ContainerList;
  container: string;
  /**
   * imagePullPolicy as the Pod arrived (defaulted by the API server before admission), as one
   * of a fixed set: mutating admission runs before validation, so it may be any string.
   */
  arrivedWith: PullPolicyClass;
  /** The webhook set Always because the credential asks for it. */
  setAlways: boolean;
}

export interface PodMutation {
  patch: JsonPatchOperation[];
  /** Secret names appended to imagePullSecrets, in the order appended. */
  addedSecrets: string[];
  /** The credentials whose Secret applies to this Pod, oldest first. */
  credentials: string[];
  privateImages: PrivateImageUse[];
}

/** What the caches say about a namespace's Secret under a name a credential writes. */
export type UnmanagedSecretLookup = (
  namespace: string,
  name: string,
) => V1Secret | null | undefined;

/** An imagePullPolicy as the webhook reports it: the valid values, unset, or anything else. */
export type PullPolicyClass = 'Always' | 'IfNotPresent' | 'Never' | 'unset' | 'other';

export function pullPolicyClass(policy: string | undefined | null): PullPolicyClass {
  if (policy === undefined || policy === null || policy === '') return 'unset';
  return policy === 'Always' || policy === 'IfNotPresent' || policy === 'Never' ? policy : 'other';
}

/** The Secret carrying our managed-by label under that name, from the managed cache. */
export type ManagedSecretLookup = (namespace: string, name: string) => V1Secret | undefined;

/** Decides whether an image is one of these registries' (the kubelet's matching). */
export type ImageMatcher = (image: string, servers: readonly string[]) => boolean;

export interface PodMutationInput {
  pod: V1Pod;
  namespace: NamespaceInfo;
  credentials: Iterable<RegistryCredential>;
  unmanagedSecret: UnmanagedSecretLookup;
  managedSecret?: ManagedSecretLookup;
  /** Absent: no image is matched (pull isolation and its report are off). */
  matchesImage?: ImageMatcher;
}

/** A spec's namespace rule, or null for an invalid selector (it targets nothing). */
type Selection = ((ns: NamespaceInfo) => boolean) | null;

interface CompiledSelection {
  namespaceSelector: RegistryCredentialSpec['namespaceSelector'];
  namespaces: RegistryCredentialSpec['namespaces'];
  selects: Selection;
}

/**
 * Each spec's rule, compiled once (validating a selector's keys and values is most of an
 * admission's decision otherwise). Cached objects are never mutated (informer.ts), so a spec
 * object keeps its rule; the fields it was compiled from are compared anyway, and an updated
 * credential arrives as a new object. Weak: it goes with the credential.
 */
const compiledSelections = new WeakMap<RegistryCredentialSpec, CompiledSelection>();

function selectionOf(spec: RegistryCredentialSpec): Selection {
  const compiled = compiledSelections.get(spec);
  if (
    compiled &&
    compiled.namespaceSelector === spec.namespaceSelector &&
    compiled.namespaces === spec.namespaces
  ) {
    return compiled.selects;
  }
  let selects: Selection;
  try {
    selects = namespaceSelection(spec);
  } catch {
    selects = null; // an invalid selector targets nothing (the reconciler reports it)
  }
  compiledSelections.set(spec, {
    namespaceSelector: spec.namespaceSelector,
    namespaces: spec.namespaces,
    selects,
  });
  return selects;
}

/**
 * `selectedServiceAccounts(spec, [name]).length > 0` (the reconciler's rule) without the
 * Sets and arrays it builds for a list of names; a unit test holds the two to the same answer.
 */
export function selectsServiceAccount(spec: RegistryCredentialSpec, name: string): boolean {
  const wanted = spec.serviceAccounts ?? ['default'];
  return wanted.includes('*') || wanted.includes(name);
}

/**
 * The credentials whose Secret a Pod in `namespace` running as `serviceAccount` should pull
 * with, oldest first: not deleted or suspended, targeting the namespace, selecting the
 * ServiceAccount, and not in conflict with a Secret of that name someone else owns there.
 */
export function applicableCredentials(
  namespace: NamespaceInfo,
  serviceAccount: string,
  credentials: Iterable<RegistryCredential>,
  unmanagedSecret: UnmanagedSecretLookup,
  managedSecret?: ManagedSecretLookup,
): RegistryCredential[] {
  const applicable: RegistryCredential[] = [];
  for (const cred of credentials) {
    if (cred.metadata.deletionTimestamp || cred.spec.suspend) continue;
    const selects = selectionOf(cred.spec);
    if (selects === null || !selects(namespace)) continue;
    if (!selectsServiceAccount(cred.spec, serviceAccount)) continue;
    const name = cred.metadata.name ?? '';
    const secretName = effectiveSecretName(cred);
    const other = unmanagedSecret(namespace.name, secretName);
    // Someone else's Secret under our name: the reconciler reports a conflict and adds no
    // entry; neither does the webhook (the Pod would pull with a Secret we do not manage).
    if (other && classifySecret(other, name).kind === 'unmanaged') continue;
    // One with our labels that we did not write (no controller ownerReference to this
    // credential's uid: a tenant's, or another credential's) is not vouched for either.
    const labelled = managedSecret?.(namespace.name, secretName);
    if (labelled && !isProvablyOurs(labelled, cred)) continue;
    applicable.push(cred);
  }
  if (applicable.length < 2) return applicable;
  return applicable.sort((a, b) =>
    olderCredentialWins(
      { name: a.metadata.name ?? '', creationTimestamp: a.metadata.creationTimestamp },
      { name: b.metadata.name ?? '', creationTimestamp: b.metadata.creationTimestamp },
    ),
  );
}

/** Each credential object's servers, listed once (cached objects are never mutated). */
const serversOf = new WeakMap<RegistryCredential, readonly string[]>();

/** The servers a credential's Secret holds keys for: explicit ones and imported ones. */
export function credentialServers(cred: RegistryCredential): string[] {
  const servers = new Set<string>();
  for (const registry of cred.spec.registries) if (registry.server) servers.add(registry.server);
  for (const registry of cred.status?.registries ?? []) {
    if (!registry.shadowed) servers.add(registry.server);
  }
  return [...servers];
}

function cachedServers(cred: RegistryCredential): readonly string[] {
  let servers = serversOf.get(cred);
  if (servers === undefined) {
    servers = credentialServers(cred);
    serversOf.set(cred, servers);
  }
  return servers;
}

/** The ServiceAccount a Pod runs as: `default` when it names none. */
export function podServiceAccount(pod: V1Pod): string {
  return pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default';
}

export function podMutation(input: PodMutationInput): PodMutation {
  const { pod, namespace } = input;
  const allCredentials = Array.isArray(input.credentials)
    ? (input.credentials as readonly RegistryCredential[])
    : [...input.credentials];
  const creds = applicableCredentials(
    namespace,
    podServiceAccount(pod),
    allCredentials,
    input.unmanagedSecret,
    input.managedSecret,
  );
  const patch: JsonPatchOperation[] = [];
  const addedSecrets: string[] = [];
  const existing = pod.spec?.imagePullSecrets;
  const present = new Set((existing ?? []).map((entry) => entry.name));
  for (const cred of creds) {
    const name = effectiveSecretName(cred);
    if (present.has(name)) continue;
    present.add(name);
    addedSecrets.push(name);
  }
  if (addedSecrets.length > 0) {
    if (existing === undefined || existing === null) {
      patch.push({
        op: 'add',
        path: '/spec/imagePullSecrets',
        value: addedSecrets.map((name) => ({ name })),
      });
    } else {
      // Appended one by one at the end: existing entries keep their index and content.
      for (const name of addedSecrets) {
        patch.push({ op: 'add', path: '/spec/imagePullSecrets/-', value: { name } });
      }
    }
  }
  const privateImages: PrivateImageUse[] = [];
  const matches = input.matchesImage;
  if (matches) {
    matchPrivateImages(
      'initContainers',
      pod.spec?.initContainers,
      allCredentials,
      matches,
      patch,
      privateImages,
    );
    matchPrivateImages(
      'containers',
      pod.spec?.containers,
      allCredentials,
      matches,
      patch,
      privateImages,
    );
  }
  return {
    patch,
    addedSecrets,
    credentials: creds.map((cred) => cred.metadata.name ?? ''),
    privateImages,
  };
}

/**
 * Every active credential, targeted here or not, against each container of `list`: isolation is
 * about the tenants without the credential, whose Pods would otherwise run its image from the
 * cache. Appends the uses found and an `Always` for each container a credential asks it for.
 */
function matchPrivateImages(
  list: ContainerList,
  containers: V1Container[] | undefined,
  credentials: readonly RegistryCredential[],
  matches: ImageMatcher,
  patch: JsonPatchOperation[],
  privateImages: PrivateImageUse[],
): void {
  if (!containers) return;
  for (let index = 0; index < containers.length; index++) {
    const container = containers[index] as V1Container;
    const image = container.image ?? '';
    let setAlways = false;
    for (const cred of credentials) {
      if (cred.metadata.deletionTimestamp || cred.spec.suspend) continue;
      const servers = cachedServers(cred);
      if (servers.length === 0 || !matches(image, servers)) continue;
      const arrivedWith = pullPolicyClass(container.imagePullPolicy);
      const wantsAlways = cred.spec.imagePullPolicy === 'Always' && arrivedWith !== 'Always';
      if (wantsAlways && !setAlways) {
        patch.push({
          op: 'add',
          path: `/spec/${list}/${index}/imagePullPolicy`,
          value: 'Always',
        });
        setAlways = true;
      }
      privateImages.push({
        credential: cred.metadata.name ?? '',
        list,
        container: container.name,
        arrivedWith,
        setAlways: wantsAlways,
      });
    }
  }
}

export interface EphemeralContainersInput {
  pod: V1Pod;
  /** The Pod before this update: its ephemeral containers are immutable and left alone. */
  oldPod?: V1Pod;
  credentials: Iterable<RegistryCredential>;
  matchesImage: ImageMatcher;
}

/**
 * An ephemeral container added to a running Pod (`kubectl debug`, an UPDATE of the
 * `pods/ephemeralcontainers` subresource) pulls like any other container: one whose image an
 * active credential with `imagePullPolicy: Always` covers gets Always, as a container of a new
 * Pod would. Only containers this update adds are touched (the API server refuses any change to
 * one already there), and no other field: the subresource may change nothing else.
 */
export function ephemeralContainersMutation(input: EphemeralContainersInput): {
  patch: JsonPatchOperation[];
  privateImages: PrivateImageUse[];
} {
  const existing = new Set((input.oldPod?.spec?.ephemeralContainers ?? []).map((c) => c.name));
  const active = [...input.credentials].filter(
    (cred) => !cred.metadata.deletionTimestamp && !cred.spec.suspend,
  );
  const patch: JsonPatchOperation[] = [];
  const privateImages: PrivateImageUse[] = [];
  (input.pod.spec?.ephemeralContainers ?? []).forEach((container, index) => {
    if (existing.has(container.name)) return;
    const image = container.image ?? '';
    let setAlways = false;
    for (const cred of active) {
      const servers = credentialServers(cred);
      if (servers.length === 0 || !input.matchesImage(image, servers)) continue;
      const arrivedWith = pullPolicyClass(container.imagePullPolicy);
      const wantsAlways = cred.spec.imagePullPolicy === 'Always' && arrivedWith !== 'Always';
      if (wantsAlways && !setAlways) {
        patch.push({
          op: 'add',
          path: `/spec/ephemeralContainers/${index}/imagePullPolicy`,
          value: 'Always',
        });
        setAlways = true;
      }
      privateImages.push({
        credential: cred.metadata.name ?? '',
        list: 'ephemeralContainers',
        container: container.name,
        arrivedWith,
        setAlways: wantsAlways,
      });
    }
  });
  return { patch, privateImages };
}

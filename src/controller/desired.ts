// What one target namespace should hold, and how to get there from what it holds now
// without touching anything that isn't ours: other labels, annotations, ownerReferences and
// imagePullSecrets entries are kept as they are.
import { createHash } from 'node:crypto';
import type { V1LocalObjectReference, V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import {
  ADOPT_ANNOTATION,
  API_VERSION,
  CREDENTIAL_LABEL,
  GROUP,
  KIND,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
} from '../api/types.ts';
import {
  DOCKER_CONFIG_JSON_KEY,
  DOCKER_CONFIG_JSON_TYPE,
  encodeBase64,
} from '../credentials/dockerconfigjson.ts';
import { CredentialError } from '../credentials/errors.ts';

/** A label value holds at most 63 characters; longer credential names cannot be labelled. */
export const MAX_CREDENTIAL_NAME_LENGTH = 63;

export function effectiveSecretName(cred: RegistryCredential): string {
  return cred.spec.secretName ?? cred.metadata.name ?? '';
}

export function ownerReference(cred: RegistryCredential): V1OwnerReference {
  const name = cred.metadata.name;
  const uid = cred.metadata.uid;
  if (!name || !uid) throw new Error('RegistryCredential without metadata.name or metadata.uid');
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name,
    uid,
    controller: true,
    // false on purpose. true would only make a foreground deletion of the RegistryCredential
    // wait for its Secrets, which our cleanup finalizer already guarantees; and where the
    // OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift), setting it
    // requires `update` on registrycredentials/finalizers, one more RBAC grant for nothing.
    blockOwnerDeletion: false,
  };
}

/** Throws InvalidSpec for a name that can't be the value of the credential label. */
export function desiredSecret(
  cred: RegistryCredential,
  namespace: string,
  dockerConfigJson: string,
): V1Secret {
  const credName = cred.metadata.name ?? '';
  if (credName.length > MAX_CREDENTIAL_NAME_LENGTH) {
    throw new CredentialError(
      'InvalidSpec',
      `metadata.name is longer than ${MAX_CREDENTIAL_NAME_LENGTH} characters and cannot be the value of label ${CREDENTIAL_LABEL}`,
    );
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: effectiveSecretName(cred),
      namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CREDENTIAL_LABEL]: credName },
      ownerReferences: [ownerReference(cred)],
    },
    type: DOCKER_CONFIG_JSON_TYPE,
    data: { [DOCKER_CONFIG_JSON_KEY]: encodeBase64(dockerConfigJson) },
  };
}

/** Compares only what we own: type, data, our two labels, and our ownerReference. */
export function secretNeedsUpdate(existing: V1Secret, desired: V1Secret): boolean {
  if ((existing.type ?? '') !== (desired.type ?? '')) return true;
  if (!sameData(existing.data, desired.data)) return true;
  const have = existing.metadata?.labels ?? {};
  const want = desired.metadata?.labels ?? {};
  for (const key of [MANAGED_BY_LABEL, CREDENTIAL_LABEL]) {
    if (have[key] !== want[key]) return true;
  }
  const haveRefs = (existing.metadata?.ownerReferences ?? []).filter(isCredentialOwnerReference);
  const wantRefs = (desired.metadata?.ownerReferences ?? []).filter(isCredentialOwnerReference);
  return (
    haveRefs.length !== wantRefs.length ||
    !haveRefs.every((ref, i) => {
      const other = wantRefs[i];
      return other !== undefined && sameOwnerReference(ref, other);
    })
  );
}

/**
 * The object to PUT: the existing one (resourceVersion, everyone else's labels, annotations
 * and ownerReferences) with our labels, exactly our RegistryCredential ownerReference (stale
 * ones from earlier credentials are replaced), no adopt annotation, and the desired type and
 * data. `immutable` and stringData are not carried over.
 */
export function mergeSecretForUpdate(existing: V1Secret, desired: V1Secret): V1Secret {
  const meta = existing.metadata ?? {};
  const annotations = { ...meta.annotations };
  delete annotations[ADOPT_ANNOTATION];
  const ourRefs = (desired.metadata?.ownerReferences ?? []).filter(isCredentialOwnerReference);
  const otherRefs = (meta.ownerReferences ?? []).filter((r) => !isCredentialOwnerReference(r));
  const merged: V1Secret = {
    ...existing,
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      ...meta,
      labels: {
        ...meta.labels,
        [MANAGED_BY_LABEL]: desired.metadata?.labels?.[MANAGED_BY_LABEL] ?? MANAGED_BY_VALUE,
        [CREDENTIAL_LABEL]: desired.metadata?.labels?.[CREDENTIAL_LABEL] ?? '',
      },
      annotations: Object.keys(annotations).length > 0 ? annotations : undefined,
      ownerReferences: [...otherRefs.map((r) => ({ ...r })), ...ourRefs.map((r) => ({ ...r }))],
    },
    type: desired.type,
    data: { ...desired.data },
  };
  delete merged.stringData;
  return merged;
}

/**
 * The imagePullSecrets list with exactly one `{name}` entry, or undefined when it already
 * has exactly one. Other entries keep their order and are never dropped; duplicates of our
 * name collapse into the first.
 */
export function withPullSecretEntry(
  existing: readonly V1LocalObjectReference[] | undefined,
  name: string,
): V1LocalObjectReference[] | undefined {
  const list = existing ?? [];
  const count = list.filter((e) => e.name === name).length;
  if (count === 1) return undefined;
  if (count === 0) return [...list.map((e) => ({ ...e })), { name }];
  let seen = false;
  const result: V1LocalObjectReference[] = [];
  for (const entry of list) {
    if (entry.name === name) {
      if (seen) continue;
      seen = true;
    }
    result.push({ ...entry });
  }
  return result;
}

/** The imagePullSecrets list without any `{name}` entry, or undefined when it has none. */
export function withoutPullSecretEntry(
  existing: readonly V1LocalObjectReference[] | undefined,
  name: string,
): V1LocalObjectReference[] | undefined {
  const list = existing ?? [];
  if (!list.some((e) => e.name === name)) return undefined;
  return list.filter((e) => e.name !== name).map((e) => ({ ...e }));
}

export interface CredentialAge {
  name: string;
  creationTimestamp?: Date | string;
  uid?: string;
}

/**
 * -1 when `a` keeps a contested Secret, 1 when `b` does: the older creationTimestamp wins,
 * then the smaller name, then the smaller uid. A missing or unreadable timestamp counts as
 * newest. Usable as a sort comparator (oldest first).
 */
export function olderCredentialWins(a: CredentialAge, b: CredentialAge): -1 | 1 {
  const ta = timestamp(a.creationTimestamp);
  const tb = timestamp(b.creationTimestamp);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return (a.uid ?? '') <= (b.uid ?? '') ? -1 : 1;
}

function timestamp(value: Date | string | undefined): number {
  if (value === undefined) return Number.POSITIVE_INFINITY;
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
}

export function isCredentialOwnerReference(ref: V1OwnerReference): boolean {
  return ref.kind === KIND && ref.apiVersion.split('/')[0] === GROUP;
}

function sameOwnerReference(a: V1OwnerReference, b: V1OwnerReference): boolean {
  return (
    a.apiVersion === b.apiVersion &&
    a.kind === b.kind &&
    a.name === b.name &&
    a.uid === b.uid &&
    (a.controller ?? false) === (b.controller ?? false) &&
    (a.blockOwnerDeletion ?? false) === (b.blockOwnerDeletion ?? false)
  );
}

/**
 * Where the cache keeps a managed Secret's data as a digest instead of the bytes (a tenant can
 * make any number of 1 MiB Secrets carrying our labels). Not a valid data key of a Secret
 * (`/` is refused), so it never collides with real data.
 */
export const DATA_DIGEST_KEY = 'regcred.dev/sha256';

/** A digest of a Secret's whole data map (keys and values). */
export function dataDigest(data: Readonly<Record<string, string>> | undefined): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(data ?? {}).sort()) {
    hash
      .update(key)
      .update('\u0000')
      .update(data?.[key] ?? '')
      .update('\u0000');
  }
  return hash.digest('hex');
}

/** `existing` may be a cached copy whose data is only a digest (DATA_DIGEST_KEY). */
function sameData(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
): boolean {
  const digest = a?.[DATA_DIGEST_KEY];
  if (digest !== undefined && Object.keys(a ?? {}).length === 1) return digest === dataDigest(b);
  const left = Object.entries(a ?? {});
  const right = b ?? {};
  return (
    left.length === Object.keys(right).length &&
    left.every(([key, value]) => Object.hasOwn(right, key) && right[key] === value)
  );
}

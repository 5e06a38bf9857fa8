// Who owns a Secret with our name, and what we may do to it: write, adopt, leave alone. Pure
// decisions over the object as the cache holds it; the reconciler only carries them out.
import type { V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import {
  ADOPT_ANNOTATION,
  CREDENTIAL_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type RegistryCredential,
} from '../api/types.ts';
import { DOCKER_CONFIG_JSON_TYPE } from '../credentials/dockerconfigjson.ts';
import {
  type CredentialAge,
  isCredentialOwnerReference,
  mergeSecretForUpdate,
  olderCredentialWins,
  secretNeedsUpdate,
} from './desired.ts';

/** The RegistryCredential a Secret says it is managed for, if it carries our labels. */
export function managedOwner(secret: V1Secret): string | undefined {
  const labels = secret.metadata?.labels;
  if (labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) return undefined;
  return labels[CREDENTIAL_LABEL] || undefined;
}

export type SecretClaim =
  | { kind: 'absent' }
  | { kind: 'ours' }
  | { kind: 'adoptable' }
  | { kind: 'otherCredential'; owner: string }
  | { kind: 'unmanaged' };

/**
 * Who a Secret with our name belongs to, as far as `credName` is concerned.
 * - ours: our two labels, and the dockerconfigjson type (a Secret of another type carrying
 *   our labels was not written by us; we never change a type, so it is unmanaged).
 * - otherCredential: managed by the operator for another RegistryCredential; that label wins
 *   over an adopt annotation (the older credential keeps it, see olderCredentialWins).
 * - adoptable: annotated `regcred.dev/adopt: <credName>`, of type dockerconfigjson, and not
 *   controlled by another controller (it would fight us).
 * - unmanaged: anything else; reported as a conflict, never overwritten.
 */
export function classifySecret(existing: V1Secret | undefined, credName: string): SecretClaim {
  if (existing === undefined) return { kind: 'absent' };
  const labels = existing.metadata?.labels ?? {};
  const managedByUs = labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
  const labelledFor = labels[CREDENTIAL_LABEL];
  const rightType = existing.type === DOCKER_CONFIG_JSON_TYPE;
  if (managedByUs && labelledFor === credName) {
    return rightType ? { kind: 'ours' } : { kind: 'unmanaged' };
  }
  if (managedByUs && labelledFor !== undefined && labelledFor !== '') {
    return { kind: 'otherCredential', owner: labelledFor };
  }
  const adoptRequested = existing.metadata?.annotations?.[ADOPT_ANNOTATION] === credName;
  if (adoptRequested && rightType && foreignController(existing) === undefined) {
    return { kind: 'adoptable' };
  }
  return { kind: 'unmanaged' };
}

/** The short, value-free message a conflict is reported with (failedNamespaces, Events). */
export function secretConflictMessage(existing: V1Secret, claim: SecretClaim): string {
  const ref = `Secret ${existing.metadata?.namespace ?? ''}/${existing.metadata?.name ?? ''}`;
  if (claim.kind === 'otherCredential') {
    return `${ref} is managed by RegistryCredential ${claim.owner}`;
  }
  if (existing.type !== DOCKER_CONFIG_JSON_TYPE) {
    return `${ref} has type ${existing.type || 'Opaque'}; regcred-operator never changes a Secret's type`;
  }
  const controller = foreignController(existing);
  if (controller !== undefined) {
    return `${ref} is controlled by ${controller.kind} ${controller.name}`;
  }
  return `${ref} is not managed by regcred-operator`;
}

/**
 * Whether `secret` is provably one we wrote for `cred`, the only kind we ever delete: our type,
 * both labels, and a controller ownerReference to the credential's current uid. Anything else
 * carrying our labels (a tenant's copy under another name, an Opaque Secret, a label pointing
 * at a credential that does not exist) is left alone.
 */
export function isProvablyOurs(secret: V1Secret, cred: RegistryCredential): boolean {
  if (secret.type !== DOCKER_CONFIG_JSON_TYPE) return false;
  if (managedOwner(secret) !== cred.metadata.name || !cred.metadata.uid) return false;
  return (secret.metadata?.ownerReferences ?? []).some(
    (ref) =>
      ref.controller === true && isCredentialOwnerReference(ref) && ref.uid === cred.metadata.uid,
  );
}

export function foreignController(secret: V1Secret): V1OwnerReference | undefined {
  return secret.metadata?.ownerReferences?.find(
    (r) => r.controller === true && !isCredentialOwnerReference(r),
  );
}

/** What to do with the Secret under our name in one namespace. */
export type SecretWrite =
  | { action: 'create' }
  /** PUT `object` (the existing Secret with our parts, its resourceVersion kept). */
  | { action: 'update'; object: V1Secret }
  /**
   * Ours, but made immutable (by a tenant, or by hand): it can only be deleted (with `uid` as
   * precondition, so nothing written meanwhile is lost) and created again.
   */
  | { action: 'recreate'; uid: string | undefined }
  | { action: 'none' }
  | { action: 'conflict'; message: string };

/**
 * The write that makes `existing` (as read; undefined when absent) into `desired` for `cred`,
 * or the conflict that forbids it. `claimant(owner)` answers for a Secret another credential
 * manages: that credential's age if it still writes this name into this namespace (then the
 * older one keeps it), undefined if it let go (then the name is free to take over).
 */
export function decideSecretWrite(
  existing: V1Secret | undefined,
  cred: RegistryCredential,
  desired: V1Secret,
  claimant: (owner: string) => CredentialAge | undefined,
): SecretWrite {
  const credName = cred.metadata.name ?? '';
  let claim = classifySecret(existing, credName);
  if (existing === undefined || claim.kind === 'absent') return { action: 'create' };
  if (claim.kind === 'otherCredential') {
    const other = claimant(claim.owner);
    const self: CredentialAge = {
      name: credName,
      creationTimestamp: cred.metadata.creationTimestamp,
      uid: cred.metadata.uid,
    };
    if (other && olderCredentialWins(other, self) === -1) {
      return {
        action: 'conflict',
        message: `${secretConflictMessage(existing, claim)}, which is older and keeps it`,
      };
    }
    claim = { kind: 'adoptable' };
  }
  if (claim.kind === 'unmanaged') {
    return { action: 'conflict', message: secretConflictMessage(existing, claim) };
  }
  if (claim.kind === 'adoptable' || secretNeedsUpdate(existing, desired)) {
    if (existing.immutable === true) return { action: 'recreate', uid: existing.metadata?.uid };
    return { action: 'update', object: mergeSecretForUpdate(existing, desired) };
  }
  return { action: 'none' };
}

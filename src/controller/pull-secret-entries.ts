// Our imagePullSecrets entries, recorded rather than guessed: every entry the operator adds is
// listed in the ServiceAccount's `regcred.dev/pull-secrets` annotation in the same write, and
// only a recorded entry is ever removed. An entry someone else added with the same name (a
// team opting in by hand, GitOps applying it before the Secret exists) is never touched.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { PULL_SECRETS_ANNOTATION } from '../api/types.ts';
import { withoutPullSecretEntry, withPullSecretEntry } from './desired.ts';

/** The Secret names the operator recorded as its own entries on `sa`. */
export function recordedEntries(sa: V1ServiceAccount | undefined): Set<string> {
  const value = sa?.metadata?.annotations?.[PULL_SECRETS_ANNOTATION] ?? '';
  return new Set(
    value
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== ''),
  );
}

function withRecord(sa: V1ServiceAccount, names: ReadonlySet<string>): V1ServiceAccount {
  const annotations = { ...sa.metadata?.annotations };
  if (names.size === 0) delete annotations[PULL_SECRETS_ANNOTATION];
  else annotations[PULL_SECRETS_ANNOTATION] = [...names].sort().join(',');
  const metadata = { ...sa.metadata };
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  else delete metadata.annotations;
  return { ...sa, metadata };
}

/**
 * `sa` with exactly one entry `secretName`, recorded as ours; undefined when it already is.
 * An entry that is there but unrecorded (written by an earlier version, or by hand on a
 * ServiceAccount we select) becomes ours: callers only do this where the credential selects
 * the ServiceAccount in a namespace it targets.
 */
export function withOurEntry(
  sa: V1ServiceAccount,
  secretName: string,
): V1ServiceAccount | undefined {
  const entries = withPullSecretEntry(sa.imagePullSecrets, secretName);
  const recorded = recordedEntries(sa);
  if (entries === undefined && recorded.has(secretName)) return undefined;
  recorded.add(secretName);
  return withRecord({ ...sa, imagePullSecrets: entries ?? sa.imagePullSecrets }, recorded);
}

/**
 * `sa` without our entry `secretName` and without its record; undefined when we never
 * recorded it (then any entry of that name is someone else's and stays).
 */
export function withoutOurEntry(
  sa: V1ServiceAccount,
  secretName: string,
): V1ServiceAccount | undefined {
  const recorded = recordedEntries(sa);
  if (!recorded.has(secretName)) return undefined;
  recorded.delete(secretName);
  const entries = withoutPullSecretEntry(sa.imagePullSecrets, secretName);
  return withRecord({ ...sa, imagePullSecrets: entries ?? sa.imagePullSecrets }, recorded);
}

/** The change that makes `sa` agree with the credential: our entry where selected, none elsewhere. */
export function entryEdit(
  sa: V1ServiceAccount,
  secretName: string,
  selected: boolean,
): V1ServiceAccount | undefined {
  return selected ? withOurEntry(sa, secretName) : withoutOurEntry(sa, secretName);
}

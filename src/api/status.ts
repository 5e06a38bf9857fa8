// The status a reconcile settles on, as pure functions of what it found: the conditions'
// reasons and messages users read in `kubectl get/describe/wait`, and the counts. The
// status writer compares the result with the stored one and writes only a difference.
import type { CredentialError } from '../credentials/errors.ts';
import { safeMessage } from '../observability/redact.ts';
import { setCondition } from './conditions.ts';
import {
  type Condition,
  type ConditionReason,
  type FailedNamespace,
  MAX_FAILED_NAMESPACES,
  MAX_MISSING_NAMESPACES,
  MAX_STATUS_REGISTRIES,
  MAX_STATUS_SERVER_LENGTH,
  type RegistryCredential,
  type RegistryCredentialStatus,
  type RegistryStatus,
} from './types.ts';

/** A failed namespace's message in status; the schema allows far more, a reader wants less. */
const MAX_FAILED_MESSAGE_LENGTH = 512;

/** How one target namespace came out of a sync. */
export type NamespaceOutcome =
  | { kind: 'synced'; wrote: number }
  /** Gone (or terminating) under us: not counted as a target. */
  | { kind: 'skipped' }
  | { kind: 'failed'; reason: ConditionReason; message: string; transient: boolean };

/** What a full reconcile found, for computeStatus. */
export interface ReconcileFindings {
  targets: ReadonlySet<string>;
  outcomes: ReadonlyMap<string, NamespaceOutcome>;
  /** How many registries resolved (undefined when the credentials did not resolve). */
  resolvedRegistries: number | undefined;
  /** Cloud registries whose refresh failed (their last good token may still be served). */
  refreshErrors: readonly CredentialError[];
  registries: RegistryCredentialStatus['registries'];
  /** The credentials could not be resolved at all: nothing was written. */
  credentialError: CredentialError | undefined;
  cleanupErrors: readonly string[];
  /** Whether a namespace exists (terminating included), for status.missingNamespaces. */
  namespaceExists: (name: string) => boolean;
}

/**
 * What a status keeps when nothing is being synced (suspended, or a spec that cannot be used):
 * the registries and the refresh request acted on, not counts or a next refresh that would
 * describe work no longer done.
 */
function settledStatus(status: RegistryCredentialStatus | undefined): RegistryCredentialStatus {
  const kept: RegistryCredentialStatus = {};
  if (status?.registries) kept.registries = status.registries;
  if (status?.lastRefreshRequest !== undefined) kept.lastRefreshRequest = status.lastRefreshRequest;
  return kept;
}

export function suspendedStatus(cred: RegistryCredential, now: Date): RegistryCredentialStatus {
  const gen = cred.metadata.generation;
  let conditions = cred.status?.conditions;
  conditions = setCondition(
    conditions,
    {
      type: 'Ready',
      status: 'False',
      reason: 'Suspended',
      message: 'spec.suspend is true: nothing is written or removed',
      observedGeneration: gen,
    },
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: 'Synced',
      status: 'False',
      reason: 'Suspended',
      message: 'spec.suspend is true',
      observedGeneration: gen,
    },
    now,
  );
  return { ...settledStatus(cred.status), observedGeneration: gen, conditions };
}

/** A spec or source that cannot be used: every condition False, existing Secrets kept. */
export function failedStatus(
  cred: RegistryCredential,
  reason: ConditionReason,
  rawMessage: string,
  now: Date,
): RegistryCredentialStatus {
  const gen = cred.metadata.generation;
  const message = safeMessage(rawMessage);
  let conditions = cred.status?.conditions;
  conditions = setCondition(
    conditions,
    { type: 'Ready', status: 'False', reason, message, observedGeneration: gen },
    now,
  );
  conditions = setCondition(
    conditions,
    { type: 'CredentialsReady', status: 'False', reason, message, observedGeneration: gen },
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: 'Synced',
      status: 'False',
      reason,
      message: 'not syncing until the spec is valid; existing Secrets are kept',
      observedGeneration: gen,
    },
    now,
  );
  return { ...settledStatus(cred.status), observedGeneration: gen, conditions };
}

export function computeStatus(
  cred: RegistryCredential,
  found: ReconcileFindings,
  now: Date,
): RegistryCredentialStatus {
  const { targets, outcomes, credentialError, cleanupErrors, refreshErrors } = found;
  const gen = cred.metadata.generation;
  const failed: FailedNamespace[] = [];
  let synced = 0;
  let targetCount = 0;
  for (const ns of targets) {
    const outcome = outcomes.get(ns);
    if (outcome?.kind === 'skipped') continue;
    targetCount += 1;
    if (outcome?.kind === 'synced') synced += 1;
    else if (outcome?.kind === 'failed')
      failed.push({
        name: ns,
        reason: outcome.reason,
        message: safeMessage(outcome.message, MAX_FAILED_MESSAGE_LENGTH),
      });
  }
  failed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const missing = [...new Set(cred.spec.namespaces ?? [])]
    .filter((ns) => !found.namespaceExists(ns))
    .sort();
  const registries = boundedRegistries(found.registries ?? []);

  let conditions = cred.status?.conditions;
  const firstRefreshError = refreshErrors[0];
  const credentialsCondition: Omit<Condition, 'lastTransitionTime'> = credentialError
    ? {
        type: 'CredentialsReady',
        status: 'False',
        reason: credentialError.reason,
        message: safeMessage(credentialError.message),
        observedGeneration: gen,
      }
    : firstRefreshError
      ? {
          type: 'CredentialsReady',
          status: 'False',
          reason: 'RefreshFailed',
          message: safeMessage(
            firstRefreshError.message +
              (refreshErrors.length > 1 ? ` (and ${refreshErrors.length - 1} more)` : ''),
          ),
          observedGeneration: gen,
        }
      : {
          type: 'CredentialsReady',
          status: 'True',
          reason: 'CredentialsResolved',
          message: resolvedMessage(
            found.resolvedRegistries ?? 0,
            found.registries ?? [],
            registries,
          ),
          observedGeneration: gen,
        };
  conditions = setCondition(conditions, credentialsCondition, now);

  let syncedCondition: Omit<Condition, 'lastTransitionTime'>;
  if (credentialError) {
    syncedCondition = {
      type: 'Synced',
      status: 'False',
      reason: credentialError.reason,
      message: 'credentials are not ready; existing Secrets are kept unchanged',
      observedGeneration: gen,
    };
  } else if (failed.length > 0 || cleanupErrors.length > 0) {
    const conflicts = failed.filter((f) => f.reason === 'Conflict');
    const reason: ConditionReason =
      conflicts.length === failed.length && cleanupErrors.length === 0
        ? 'Conflict'
        : 'PartiallySynced';
    const parts = [`${synced}/${counted(targetCount, 'namespace', 'namespaces')} synced`];
    if (conflicts.length > 0)
      parts.push(
        `${conflicts.length} in conflict (${conflicts
          .slice(0, 3)
          .map((c) => c.name)
          .join(', ')}${conflicts.length > 3 ? ', …' : ''})`,
      );
    const other = failed.length - conflicts.length;
    if (other > 0) parts.push(`${other} failed and will be retried`);
    if (cleanupErrors.length > 0)
      parts.push(`cleanup failed in ${counted(cleanupErrors.length, 'namespace', 'namespaces')}`);
    syncedCondition = {
      type: 'Synced',
      status: 'False',
      reason,
      message: parts.join('; '),
      observedGeneration: gen,
    };
  } else {
    syncedCondition = {
      type: 'Synced',
      status: 'True',
      reason: 'Synced',
      message: `${synced}/${counted(targetCount, 'namespace', 'namespaces')} synced`,
      observedGeneration: gen,
    };
  }
  conditions = setCondition(conditions, syncedCondition, now);

  let readyCondition: Omit<Condition, 'lastTransitionTime'>;
  if (credentialsCondition.status !== 'True') {
    readyCondition = { ...credentialsCondition, type: 'Ready' };
  } else if (syncedCondition.status !== 'True') {
    readyCondition = { ...syncedCondition, type: 'Ready' };
  } else if (targetCount === 0) {
    readyCondition = {
      type: 'Ready',
      status: 'True',
      reason: 'NoTargets',
      message:
        'no namespace matched spec.namespaceSelector or spec.namespaces' +
        (missing.length > 0
          ? `; spec.namespaces names ${missing.length} that ${missing.length === 1 ? 'does' : 'do'} not exist (${listed(missing, 3)})`
          : ''),
      observedGeneration: gen,
    };
  } else {
    readyCondition = {
      type: 'Ready',
      status: 'True',
      reason: 'Ready',
      message: `${counted(synced, 'namespace holds', 'namespaces hold')} the current Secret`,
      observedGeneration: gen,
    };
  }
  conditions = setCondition(conditions, readyCondition, now);

  const status: RegistryCredentialStatus = {
    observedGeneration: gen,
    conditions,
    targetNamespaces: targetCount,
    syncedNamespaces: credentialError ? 0 : synced,
  };
  status.failedNamespaceCount = failed.length;
  if (failed.length > 0) status.failedNamespaces = failed.slice(0, MAX_FAILED_NAMESPACES);
  if (missing.length > 0) status.missingNamespaces = missing.slice(0, MAX_MISSING_NAMESPACES);
  if (registries.length > 0) status.registries = registries;
  return status;
}

/**
 * status.registries within the schema's bounds, so status can always be written: servers cut
 * with an ellipsis, and at most MAX_STATUS_REGISTRIES entries. When there are more, explicit
 * registries (their refresh times matter) and shadowed keys (a user must see those) are kept
 * first; the order is otherwise unchanged.
 */
export function boundedRegistries(all: readonly RegistryStatus[]): RegistryStatus[] {
  let kept = all;
  if (all.length > MAX_STATUS_REGISTRIES) {
    const rank = (r: RegistryStatus) => (r.source !== 'dockerConfig' ? 0 : r.shadowed ? 1 : 2);
    const chosen = new Set(
      all
        .map((r, i) => ({ r, i }))
        .sort((a, b) => rank(a.r) - rank(b.r) || a.i - b.i)
        .slice(0, MAX_STATUS_REGISTRIES)
        .map(({ i }) => i),
    );
    kept = all.filter((_, i) => chosen.has(i));
  }
  return kept.map((r) => ({ ...r, server: ellipsize(r.server, MAX_STATUS_SERVER_LENGTH) }));
}

/** At most `max` characters as the API server counts them (code points), ending in '…' if cut. */
export function ellipsize(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

function resolvedMessage(
  resolved: number,
  all: readonly RegistryStatus[],
  listedInStatus: readonly RegistryStatus[],
): string {
  const parts = [`${counted(resolved, 'registry', 'registries')} resolved`];
  const shadowed = all.filter((r) => r.shadowed).length;
  if (shadowed > 0) {
    parts.push(
      `${counted(shadowed, 'imported key', 'imported keys')} left out: the kubelet takes ${shadowed === 1 ? 'it' : 'them'} for a registry another entry names`,
    );
  }
  if (listedInStatus.length < all.length) {
    parts.push(`status.registries lists ${listedInStatus.length} of ${all.length}`);
  }
  return parts.join('; ');
}

/** "1 namespace", "2 namespaces", "0 namespaces": a count and the words that agree with it. */
export function counted(count: number, singular: string, plural: string): string {
  return `${count} ${count === 1 ? singular : plural}`;
}

function listed(names: readonly string[], max: number): string {
  return names.slice(0, max).join(', ') + (names.length > max ? ', …' : '');
}

/** Status equality as the API server would store it (key order and undefined ignored). */
export function sameStatus(
  a: RegistryCredentialStatus | undefined,
  b: RegistryCredentialStatus,
): boolean {
  return canonical(a ?? {}) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, inner]) => inner !== undefined && inner !== null)
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
      );
    }
    return v;
  });
}

/**
 * The Event for a change in which imported keys are shadowed (left out of the Secret because
 * the kubelet would take them for a registry another entry names); undefined when none are new.
 */
export function shadowingEvent(
  before: RegistryCredentialStatus | undefined,
  after: RegistryCredentialStatus,
): { type: 'Warning'; reason: 'RegistryShadowed'; message: string } | undefined {
  const shadowed = (s: RegistryCredentialStatus | undefined) =>
    (s?.registries ?? []).filter((r) => r.shadowed).map((r) => r.server);
  const now = shadowed(after);
  const was = new Set(shadowed(before));
  if (now.length === 0 || now.every((server) => was.has(server))) return undefined;
  return {
    type: 'Warning',
    reason: 'RegistryShadowed',
    message:
      `${counted(now.length, 'imported key', 'imported keys')} left out of the Secret: the kubelet takes ${now.length === 1 ? 'it' : 'them'} for a ` +
      `registry another entry names (${listed(
        now.map((server) => ellipsize(server, 100)),
        3,
      )}); see status.registries`,
  };
}

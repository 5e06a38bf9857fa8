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
  type RegistryCredential,
  type RegistryCredentialStatus,
} from './types.ts';

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
  return { ...cred.status, observedGeneration: gen, conditions };
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
  return { ...cred.status, observedGeneration: gen, conditions };
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
      failed.push({ name: ns, reason: outcome.reason, message: outcome.message });
  }
  failed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

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
          message: `${found.resolvedRegistries ?? 0} registries resolved`,
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
    const parts = [`${synced}/${targetCount} namespaces synced`];
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
      parts.push(`cleanup failed in ${cleanupErrors.length} namespace(s)`);
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
      message: `${synced}/${targetCount} namespaces synced`,
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
      message: 'no namespace matched spec.namespaceSelector or spec.namespaces',
      observedGeneration: gen,
    };
  } else {
    readyCondition = {
      type: 'Ready',
      status: 'True',
      reason: 'Ready',
      message: `${synced} namespaces hold the current Secret`,
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
  if (failed.length > 0) status.failedNamespaces = failed.slice(0, MAX_FAILED_NAMESPACES);
  if (found.registries && found.registries.length > 0) status.registries = found.registries;
  return status;
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

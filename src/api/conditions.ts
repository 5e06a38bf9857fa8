// metav1.Condition bookkeeping: lastTransitionTime moves only when status changes, so
// `kubectl wait` and alerting see real transitions, and an unchanged reconcile produces an
// identical status (no write).
import type { Condition, ConditionType } from './types.ts';

const CONDITION_ORDER: readonly string[] = ['Ready', 'CredentialsReady', 'Synced'];

/** RFC 3339 with whole seconds, as metav1.Time serializes. */
export function conditionTime(now: Date): string {
  return now.toISOString().replace(/\.\d+Z$/, 'Z');
}

/**
 * Returns a new list with `next` set: replaces the condition of the same type (keeping its
 * lastTransitionTime when the status is unchanged) or adds it. Order: Ready,
 * CredentialsReady, Synced, then any others in their existing order.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const existing = findCondition(conditions, next.type);
  const lastTransitionTime =
    existing !== undefined && existing.status === next.status
      ? existing.lastTransitionTime
      : conditionTime(now);
  const updated: Condition = { ...next, lastTransitionTime };
  const others = (conditions ?? []).filter((c) => c.type !== next.type).map((c) => ({ ...c }));
  return orderConditions([...others, updated]);
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: ConditionType,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Known types first in their fixed order, then the rest as they were (a stable sort). */
export function orderConditions(conditions: readonly Condition[]): Condition[] {
  const rank = (c: Condition): number => {
    const i = CONDITION_ORDER.indexOf(c.type);
    return i < 0 ? CONDITION_ORDER.length : i;
  };
  return [...conditions].sort((a, b) => rank(a) - rank(b));
}

/** True when two condition lists would serialize the same (for skipping status writes). */
export function sameConditions(
  a: readonly Condition[] | undefined,
  b: readonly Condition[] | undefined,
): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  return left.every((c, i) => {
    const d = right[i];
    return (
      d !== undefined &&
      c.type === d.type &&
      c.status === d.status &&
      c.reason === d.reason &&
      c.message === d.message &&
      c.observedGeneration === d.observedGeneration &&
      c.lastTransitionTime === d.lastTransitionTime
    );
  });
}

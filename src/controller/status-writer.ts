// Writing status: only when it differs from what is stored, and with Events on the
// transitions a person wants to see in `kubectl describe` (Ready changing, the set of
// namespaces failing for a reason changing), never one per namespace per reconcile.
import { findCondition } from '../api/conditions.ts';
import { counted, sameStatus, shadowingEvent } from '../api/status.ts';
import type { RegistryCredential, RegistryCredentialStatus } from '../api/types.ts';
import type { ReconcileContext } from './reconcile-context.ts';

export class StatusWriter {
  private readonly ctx: ReconcileContext;

  constructor(ctx: ReconcileContext) {
    this.ctx = ctx;
  }

  async write(cred: RegistryCredential, status: RegistryCredentialStatus): Promise<void> {
    const name = cred.metadata.name ?? '';
    this.ctx.onStatus?.(name, status);
    if (sameStatus(cred.status, status)) return;
    const updated = await this.ctx.api.patchCredentialStatus(name, status);
    this.ctx.view.wroteCredential(updated);
    for (const event of transitionEvents(cred.status, status)) {
      await this.ctx.events.record(cred, event.type, event.reason, event.message);
    }
    // Each namespace that newly fails hears of it in its own namespace, on the Secret.
    const secretName = cred.spec.secretName ?? name;
    const known = new Set(
      (cred.status?.failedNamespaces ?? []).map((f) => `${f.name}/${f.reason}`),
    );
    for (const failure of status.failedNamespaces ?? []) {
      if (known.has(`${failure.name}/${failure.reason}`)) continue;
      await this.ctx.events.record(
        cred,
        'Warning',
        failure.reason,
        `RegistryCredential ${name}: ${failure.message}`,
        { namespace: failure.name, kind: 'Secret', name: secretName },
      );
    }
  }
}

export interface TransitionEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** The Events a status change deserves: Ready's transition, then one per failure reason. */
export function transitionEvents(
  before: RegistryCredentialStatus | undefined,
  after: RegistryCredentialStatus,
): TransitionEvent[] {
  const events: TransitionEvent[] = [];
  const wasReady = findCondition(before?.conditions, 'Ready');
  const ready = findCondition(after.conditions, 'Ready');
  if (ready && (wasReady?.status !== ready.status || wasReady.reason !== ready.reason)) {
    events.push({
      type: ready.status === 'True' ? 'Normal' : 'Warning',
      reason: ready.reason,
      message: ready.message,
    });
  }
  const was = failuresByReason(before);
  for (const [reason, names] of failuresByReason(after)) {
    if ((was.get(reason) ?? []).join(',') === names.join(',')) continue;
    const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
    events.push({
      type: 'Warning',
      reason,
      message: `${reason} in ${counted(names.length, 'namespace', 'namespaces')}: ${shown}`,
    });
  }
  const shadowing = shadowingEvent(before, after);
  if (shadowing) events.push(shadowing);
  return events;
}

function failuresByReason(status: RegistryCredentialStatus | undefined): Map<string, string[]> {
  const byReason = new Map<string, string[]>();
  for (const f of status?.failedNamespaces ?? []) {
    byReason.set(f.reason, [...(byReason.get(f.reason) ?? []), f.name]);
  }
  return byReason;
}

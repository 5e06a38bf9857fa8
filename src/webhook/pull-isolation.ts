// The advisory PullIsolation condition (API.md, "Pod admission and pull isolation"): whether the
// Pods this replica admitted that use a credential's registries are protected from running its
// image out of a node's cache (the credential's own imagePullPolicy: Always, or every such
// container arriving with Always, e.g. under AlwaysPullImages) or arrive with IfNotPresent. It
// never affects Ready. The leader writes it next to the reconciler's conditions, which keeps
// conditions of other types as they are.

import { setCondition } from '../api/conditions.ts';
import type { Condition, RegistryCredential } from '../api/types.ts';
import { GROUP, PLURAL, VERSION } from '../api/types.ts';
import type { ClusterCaches } from '../kube/cluster-view.ts';
import { KubeApiError, type KubeRest, segment } from '../kube/rest.ts';
import type { Logger } from '../observability/logger.ts';
import type { PrivateImageUse } from './pod-mutation.ts';

export const PULL_ISOLATION = 'PullIsolation' as const;

export interface PolicyCounts {
  /** Containers that pull every time: arrived with Always, or set to Always by the webhook. */
  protected: number;
  /** Containers that arrived with IfNotPresent or Never and kept it. */
  unprotected: number;
}

export type PullIsolationCondition = Omit<Condition, 'lastTransitionTime'>;

/** The condition for `cred` given what the webhook saw (undefined counts: nothing seen). */
export function pullIsolationCondition(
  cred: RegistryCredential,
  counts: PolicyCounts | undefined,
): PullIsolationCondition {
  const observedGeneration = cred.metadata.generation ?? 0;
  const base = { type: PULL_ISOLATION, observedGeneration } as const;
  if (cred.spec.imagePullPolicy === 'Always') {
    return {
      ...base,
      status: 'True',
      reason: 'PullPolicyAlways',
      message: 'the Pod webhook sets imagePullPolicy Always on containers using these registries',
    };
  }
  if (!counts || counts.protected + counts.unprotected === 0) {
    return {
      ...base,
      status: 'Unknown',
      reason: 'NoPodsSeen',
      message: 'the Pod webhook has not admitted a Pod using these registries yet',
    };
  }
  if (counts.unprotected === 0) {
    return {
      ...base,
      status: 'True',
      reason: 'AlwaysPullSeen',
      message:
        'every Pod using these registries that the leading replica admitted arrived with imagePullPolicy Always (AlwaysPullImages or its own); the other replica serves admissions too and its are not counted',
    };
  }
  return {
    ...base,
    status: 'False',
    reason: 'IfNotPresentSeen',
    message:
      "Pods using these registries arrive with imagePullPolicy IfNotPresent: a tenant without this credential may run the image from a node cache unless the kubelets verify pull credentials (KubeletEnsureSecretPulledImages); set spec.imagePullPolicy: Always or enable AlwaysPullImages. Seen by a replica of the Pod webhook; kept until the RegistryCredential's spec changes",
  };
}

/** Counts per credential, from the webhook's admissions (this replica's). */
export class PullPolicyObservations {
  private readonly counts = new Map<string, PolicyCounts>();

  observe(uses: readonly PrivateImageUse[]): void {
    for (const use of uses) {
      // Not a valid policy: the API server refuses the Pod right after admission.
      if (!use.setAlways && use.arrivedWith === 'other') continue;
      const counts = this.counts.get(use.credential) ?? { protected: 0, unprotected: 0 };
      if (use.setAlways || use.arrivedWith === 'Always') counts.protected += 1;
      else counts.unprotected += 1;
      this.counts.set(use.credential, counts);
    }
  }

  of(credential: string): PolicyCounts | undefined {
    return this.counts.get(credential);
  }
}

/** On the leader: writes PullIsolation where it differs from what the cache shows. */
export class PullIsolationWriter {
  private readonly rest: KubeRest;
  private readonly caches: ClusterCaches;
  private readonly observations: PullPolicyObservations;
  private readonly log: Logger;
  private timer?: NodeJS.Timeout;

  constructor(o: {
    rest: KubeRest;
    caches: ClusterCaches;
    observations: PullPolicyObservations;
    log: Logger;
  }) {
    this.rest = o.rest;
    this.caches = o.caches;
    this.observations = o.observations;
    this.log = o.log;
  }

  lead(leadership: AbortSignal, intervalMs = 10_000): void {
    const tick = () => {
      if (leadership.aborted) return;
      this.pass(leadership).finally(() => {
        if (leadership.aborted) return;
        this.timer = setTimeout(tick, intervalMs);
        this.timer.unref();
      });
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  async pass(signal?: AbortSignal): Promise<void> {
    for (const cred of this.caches.credentials()) {
      if (cred.metadata.deletionTimestamp) continue;
      const name = cred.metadata.name ?? '';
      const want = pullIsolationCondition(cred, this.observations.of(name));
      const have = cred.status?.conditions?.find((c) => c.type === PULL_ISOLATION);
      // A new leader has seen no Pod yet: what an earlier one saw stays until it sees some.
      const seenBefore = have?.reason === 'AlwaysPullSeen' || have?.reason === 'IfNotPresentSeen';
      if (want.reason === 'NoPodsSeen' && seenBefore) continue;
      // Each replica counts only the admissions it served: False, once seen by any leader, is
      // not undone by a later leader that saw only Always Pods, until the spec changes.
      const falseForThisSpec =
        have?.reason === 'IfNotPresentSeen' && have.observedGeneration === want.observedGeneration;
      if (want.reason === 'AlwaysPullSeen' && falseForThisSpec) continue;
      if (
        have &&
        have.status === want.status &&
        have.reason === want.reason &&
        have.message === want.message &&
        have.observedGeneration === want.observedGeneration
      ) {
        continue;
      }
      const conditions = setCondition(cred.status?.conditions, want, new Date());
      try {
        await this.rest.send(
          {
            method: 'PATCH',
            path: `/apis/${GROUP}/${VERSION}/${PLURAL}/${segment(name)}/status`,
            contentType: 'application/merge-patch+json',
            // The resourceVersion makes a concurrent status write win; the next pass retries.
            body: {
              metadata: { resourceVersion: cred.metadata.resourceVersion },
              status: { conditions },
            },
            ...(signal ? { signal } : {}),
          },
          `update PullIsolation of RegistryCredential ${name}`,
        );
      } catch (error) {
        if (error instanceof KubeApiError && (error.conflict || error.notFound)) continue;
        this.log.warn('could not write PullIsolation', {
          registryCredential: name,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
  }
}

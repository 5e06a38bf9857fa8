// Pods on the suite's real node: made as a tenant's automation would (image, pull policy, the
// namespace's ServiceAccount; imagePullSecrets only from the ServiceAccount admission copies),
// bound with spec.nodeName since no scheduler runs, on the host's network (no CNI here). What a
// test asserts is what a user sees: the Pod phase and the kubelet's pull error.
import type { CoreV1Api, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { uniqueName } from '../support/names.ts';
import { waitFor } from '../support/wait.ts';
import { NODE } from './hooks.ts';

export interface PodOptions {
  pullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  serviceAccount?: string;
  /** Pull Secrets named on the Pod itself (a user's own, besides the ServiceAccount's). */
  imagePullSecrets?: string[];
}

/** A Pod template for the suite's node: `image` runs the pause binary, which exits on SIGTERM. */
export function podSpec(image: string, options: PodOptions = {}): V1Pod['spec'] {
  return {
    nodeName: NODE.name,
    hostNetwork: true,
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 1,
    ...(options.serviceAccount ? { serviceAccountName: options.serviceAccount } : {}),
    ...(options.imagePullSecrets
      ? { imagePullSecrets: options.imagePullSecrets.map((name) => ({ name })) }
      : {}),
    tolerations: [{ operator: 'Exists' }],
    containers: [{ name: 'app', image, imagePullPolicy: options.pullPolicy ?? 'IfNotPresent' }],
  };
}

export async function createPod(
  core: CoreV1Api,
  namespace: string,
  image: string,
  options: PodOptions = {},
): Promise<string> {
  const name = uniqueName('app');
  await core.createNamespacedPod({
    namespace,
    body: { metadata: { name }, spec: podSpec(image, options) },
  });
  return name;
}

function appStatus(pod: V1Pod): V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((status) => status.name === 'app');
}

/** What the Pod shows now: its phase and, while waiting, the container's reason and message. */
export function podState(pod: V1Pod): { phase: string; reason?: string; message?: string } {
  const status = appStatus(pod);
  return {
    phase: pod.status?.phase ?? '',
    reason: status?.state?.waiting?.reason ?? (status?.state?.running ? 'Running' : undefined),
    message: status?.state?.waiting?.message,
  };
}

const PULL_FAILED = new Set(['ErrImagePull', 'ImagePullBackOff']);

/** Resolves once the Pod is Running with its container started; fails at once on a pull error. */
export async function waitRunning(
  core: CoreV1Api,
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<V1Pod> {
  const pod = await waitFor(
    `Pod ${namespace}/${name} to be Running`,
    () => core.readNamespacedPod({ namespace, name }),
    (found) =>
      (found.status?.phase === 'Running' && appStatus(found)?.state?.running !== undefined) ||
      PULL_FAILED.has(podState(found).reason ?? ''),
    { timeoutMs, intervalMs: 200 },
  );
  const state = podState(pod);
  if (state.phase !== 'Running') {
    throw new Error(
      `Pod ${namespace}/${name} did not start: ${state.reason}: ${state.message ?? ''}`,
    );
  }
  return pod;
}

/**
 * Resolves with the kubelet's pull error once the Pod's container waits in ErrImagePull or
 * ImagePullBackOff (the error text from the first ErrImagePull, or the kubelet's Failed event).
 */
export async function waitPullRefused(
  core: CoreV1Api,
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<{ phase: string; reason: string; error: string }> {
  const pod = await waitFor(
    `Pod ${namespace}/${name} to fail pulling its image`,
    () => core.readNamespacedPod({ namespace, name }),
    (found) => {
      return PULL_FAILED.has(podState(found).reason ?? '');
    },
    { timeoutMs, intervalMs: 200 },
  );
  const state = podState(pod);
  let error = state.reason === 'ErrImagePull' ? (state.message ?? '') : '';
  if (!error) {
    const events = await core.listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.name=${name},reason=Failed`,
    });
    error = events.items.map((event) => event.message ?? '').join('\n');
  }
  return { phase: state.phase, reason: state.reason ?? '', error };
}

/** The kubelet's words for a pull the registry refused with 401 (containerd 2.x). */
export const PULL_UNAUTHORIZED =
  /401 Unauthorized|authorization failed|no basic auth credentials|pull access denied/i;

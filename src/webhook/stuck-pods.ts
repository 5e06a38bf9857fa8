// Pods already stuck pulling because they were created without a credential's Secret (before
// the operator, the webhook or the ServiceAccount entry existed): the kubelet never re-reads
// imagePullSecrets, so such a Pod stays in ImagePullBackOff for good. Pure decision here; the
// StuckPods class (stuck-pod-recovery.ts) carries it out on the leader.
import type { V1Pod, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { IGNORE_ANNOTATION, type RegistryCredential, SYSTEM_NAMESPACES } from '../api/types.ts';
import { effectiveSecretName } from '../controller/desired.ts';
import { isProvablyOurs } from '../controller/ownership.ts';
import type { NamespaceInfo } from '../controller/selection.ts';
import {
  applicableCredentials,
  credentialServers,
  type ImageMatcher,
  podServiceAccount,
  type UnmanagedSecretLookup,
} from './pod-mutation.ts';

export const PULL_FAILURE_REASONS: ReadonlySet<string> = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
]);
/** Owners that recreate an evicted Pod from a template (so it is admitted again). */
export const RECREATING_OWNERS: ReadonlySet<string> = new Set([
  'ReplicaSet',
  'StatefulSet',
  'Job',
  'DaemonSet',
]);

export type StuckPodDecision =
  | { kind: 'none' }
  /** Stuck for want of `secret`, but nothing proves a new Pod would pull: wait. */
  | { kind: 'wait'; credential: string; secret: string; image: string; why: string }
  /** Its controller will recreate it, and the new Pod will carry `secret`. */
  | { kind: 'evict'; credential: string; secret: string; image: string; owner: string }
  /** A bare Pod (or one nothing recreates): only its owner can fix it. */
  | { kind: 'report'; credential: string; secret: string; image: string };

export interface StuckPodView {
  namespace: NamespaceInfo | undefined;
  credentials: Iterable<RegistryCredential>;
  unmanagedSecret: UnmanagedSecretLookup;
  /** The managed Secret of that name in the Pod's namespace, from the cache. */
  managedSecret(namespace: string, name: string): V1Secret | undefined;
  serviceAccount(namespace: string, name: string): V1ServiceAccount | undefined;
  /**
   * The API server has been calling the Pod webhook (a well-formed review lately): a recreated
   * Pod gets the entry at admission, if the webhook's namespaceSelector sends it there.
   */
  webhookServing: boolean;
  /** The operator's namespace, which the webhook's namespaceSelector leaves out. */
  operatorNamespace?: string;
  matchesImage: ImageMatcher;
}

/**
 * Whether the webhook configuration's namespaceSelector (config/webhook) sends a namespace's
 * Pods to the webhook: not the system namespaces nor the operator's, and not a namespace
 * *labelled* regcred.dev/ignore=true. The reconciler honours only the *annotation* (API.md), so
 * a namespace with the label alone still gets the Secret and the ServiceAccount entry, but not
 * the webhook: there only the ServiceAccount entry proves a recreated Pod would carry it.
 */
export function webhookSelectsNamespace(
  namespace: NamespaceInfo,
  operatorNamespace?: string,
): boolean {
  if (namespace.labels[IGNORE_ANNOTATION] === 'true') return false;
  if (SYSTEM_NAMESPACES.includes(namespace.name)) return false;
  return namespace.name !== operatorNamespace;
}

function failingImages(pod: V1Pod): string[] {
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  return statuses
    .filter((s) => PULL_FAILURE_REASONS.has(s.state?.waiting?.reason ?? ''))
    .map((s) => {
      // The spec's image, as the kubelet pulls it (the status may show a resolved name).
      const spec = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
        (c) => c.name === s.name,
      );
      return spec?.image ?? s.image;
    });
}

export function decideStuckPod(pod: V1Pod, view: StuckPodView): StuckPodDecision {
  if (pod.metadata?.deletionTimestamp || !view.namespace) return { kind: 'none' };
  const images = failingImages(pod);
  if (images.length === 0) return { kind: 'none' };
  const serviceAccount = podServiceAccount(pod);
  const listed = new Set((pod.spec?.imagePullSecrets ?? []).map((e) => e.name));
  const creds = applicableCredentials(
    view.namespace,
    serviceAccount,
    view.credentials,
    view.unmanagedSecret,
  );
  for (const image of images) {
    for (const cred of creds) {
      const secret = effectiveSecretName(cred);
      if (listed.has(secret)) continue;
      if (!credentialServers(cred).some((server) => view.matchesImage(image, [server]))) continue;
      const credential = cred.metadata.name ?? '';
      const ns = view.namespace.name;
      const found = view.managedSecret(ns, secret);
      // Our labels alone prove nothing (a tenant can write them): the controller ownerReference
      // to this credential's uid, as before a delete (ADR 0009).
      if (!found || !isProvablyOurs(found, cred)) {
        return { kind: 'wait', credential, secret, image, why: `Secret ${secret} not written yet` };
      }
      const ready = cred.status?.conditions?.find((c) => c.type === 'CredentialsReady');
      if (ready?.status !== 'True') {
        // A Secret whose credentials do not resolve would fail the new Pod the same way.
        return { kind: 'wait', credential, secret, image, why: 'credentials not ready' };
      }
      const owner = (pod.metadata?.ownerReferences ?? []).find((ref) => ref.controller === true);
      if (!owner || !RECREATING_OWNERS.has(owner.kind)) {
        return { kind: 'report', credential, secret, image };
      }
      // Proof that the replacement carries the entry: the ServiceAccount admission plugin
      // copies it from the ServiceAccount, or the webhook adds it.
      const sa = view.serviceAccount(ns, serviceAccount);
      const saHasEntry = (sa?.imagePullSecrets ?? []).some((e) => e.name === secret);
      const webhookAdds =
        view.webhookServing && webhookSelectsNamespace(view.namespace, view.operatorNamespace);
      if (!saHasEntry && !webhookAdds) {
        return {
          kind: 'wait',
          credential,
          secret,
          image,
          why: `ServiceAccount ${serviceAccount} does not list ${secret} yet`,
        };
      }
      return { kind: 'evict', credential, secret, image, owner: `${owner.kind}/${owner.name}` };
    }
  }
  return { kind: 'none' };
}

/** What the Pod cache keeps of a Pod: what decideStuckPod reads, nothing else. */
export function compactPod(pod: V1Pod): V1Pod {
  const m = pod.metadata ?? {};
  const container = (c: { name: string; image?: string }) => ({ name: c.name, image: c.image });
  const status = (s: NonNullable<NonNullable<V1Pod['status']>['containerStatuses']>[number]) => ({
    name: s.name,
    image: s.image,
    imageID: '',
    ready: s.ready,
    restartCount: 0,
    ...(s.state?.waiting?.reason ? { state: { waiting: { reason: s.state.waiting.reason } } } : {}),
  });
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      // Tells a replacement (created after an eviction) from its older siblings.
      ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
      ownerReferences: (m.ownerReferences ?? [])
        .filter((ref) => ref.controller === true)
        .map((ref) => ({
          apiVersion: ref.apiVersion,
          kind: ref.kind,
          name: ref.name,
          uid: ref.uid,
          controller: true,
        })),
    },
    spec: {
      ...(pod.spec?.serviceAccountName ? { serviceAccountName: pod.spec.serviceAccountName } : {}),
      ...(pod.spec?.imagePullSecrets ? { imagePullSecrets: pod.spec.imagePullSecrets } : {}),
      containers: (pod.spec?.containers ?? []).map(container),
      ...(pod.spec?.initContainers
        ? { initContainers: pod.spec.initContainers.map(container) }
        : {}),
    },
    status: {
      ...(pod.status?.containerStatuses
        ? { containerStatuses: pod.status.containerStatuses.map(status) }
        : {}),
      ...(pod.status?.initContainerStatuses
        ? { initContainerStatuses: pod.status.initContainerStatuses.map(status) }
        : {}),
    },
  };
}

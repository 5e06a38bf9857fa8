// The webhook's read-only view of the operator's caches, plus a short wait for a namespace the
// cache has not seen yet (automation creates a namespace and its workload at once).
import { catchError, filter, firstValueFrom, map, of, timeout } from 'rxjs';
import { namespaceInfo } from '../controller/selection.ts';
import type { ClusterCaches } from '../kube/cluster-view.ts';
import type { AdmissionCaches } from './pod-webhook.ts';

export function admissionCaches(caches: ClusterCaches): AdmissionCaches {
  return {
    namespace: (name) => caches.namespace(name),
    credentials: () => caches.credentials(),
    unmanagedSecret: (namespace, name) => caches.unmanagedSecret(namespace, name),
    managedSecret: (namespace, name) => caches.managedSecret(namespace, name),
    waitForNamespace: (name, timeoutMs) => {
      const wait = firstValueFrom(
        caches.namespaceEvents$.pipe(
          filter((e) => e.type !== 'delete' && e.object.metadata?.name === name),
          map((e) => namespaceInfo(e.object)),
          timeout({ first: timeoutMs }),
          catchError(() => of(undefined)),
        ),
        { defaultValue: undefined },
      );
      // It may have arrived between the caller's miss and the subscription.
      return caches.namespace(name) !== undefined ? Promise.resolve(caches.namespace(name)) : wait;
    },
  };
}

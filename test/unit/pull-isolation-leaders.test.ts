// PullIsolation across replicas: each replica counts only the admissions it served, and the
// leader writes. What a tenant would notice: a credential reported False (IfNotPresent Pods seen)
// turning True because leadership moved to a replica that happened to see only Always Pods.
import assert from 'node:assert/strict';
import { API_VERSION, KIND, type RegistryCredential } from '../../src/api/types.ts';
import type { ClusterCaches } from '../../src/kube/cluster-view.ts';
import type { KubeRest, RestRequest } from '../../src/kube/rest.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import type { PrivateImageUse } from '../../src/webhook/pod-mutation.ts';
import {
  PULL_ISOLATION,
  PullIsolationWriter,
  PullPolicyObservations,
} from '../../src/webhook/pull-isolation.ts';

function use(arrivedWith: 'Always' | 'IfNotPresent'): PrivateImageUse {
  return {
    credential: 'acme',
    list: 'containers',
    container: 'app',
    arrivedWith,
    setAlways: false,
  };
}

/** One replica: its own observations (its PodAdmission's) and a writer over the shared store. */
function replica(store: { cred: RegistryCredential }) {
  const observations = new PullPolicyObservations();
  const rest = {
    async send(req: RestRequest) {
      const body = req.body as { status: { conditions: RegistryCredential['status'] } };
      store.cred = {
        ...store.cred,
        metadata: {
          ...store.cred.metadata,
          resourceVersion: `${Number(store.cred.metadata.resourceVersion) + 1}`,
        },
        status: {
          ...store.cred.status,
          conditions: (body.status as unknown as { conditions: never }).conditions,
        },
      } as RegistryCredential;
      return {};
    },
  } as unknown as KubeRest;
  const caches = { credentials: () => [store.cred] } as unknown as ClusterCaches;
  const writer = new PullIsolationWriter({ rest, caches, observations, log: silentLogger });
  return { observations, writer };
}

function condition(store: { cred: RegistryCredential }) {
  const c = store.cred.status?.conditions?.find((x) => x.type === PULL_ISOLATION);
  return [c?.status, c?.reason];
}

describe('PullIsolation written by successive leaders', () => {
  const fresh = (): { cred: RegistryCredential } => ({
    cred: {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'acme', uid: 'u1', generation: 3, resourceVersion: '1' },
      spec: {
        namespaceSelector: {},
        registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 's' } } }],
      },
    } as RegistryCredential,
  });

  it('keeps False after a new leader that saw only Always Pods, until the credential changes', async () => {
    const store = fresh();
    const a = replica(store);
    const b = replica(store);
    // Both replicas serve the webhook: A sees an IfNotPresent Pod, B only Always ones.
    a.observations.observe([use('Always'), use('IfNotPresent')]);
    b.observations.observe([use('Always'), use('Always')]);
    await a.writer.pass();
    assert.deepEqual(condition(store), ['False', 'IfNotPresentSeen']);
    // Leadership moves to B.
    await b.writer.pass();
    assert.deepEqual(condition(store), ['False', 'IfNotPresentSeen']);
    const message = store.cred.status?.conditions?.find((c) => c.type === PULL_ISOLATION)?.message;
    assert.match(message ?? '', /replica/);
    // The credential's spec changes (generation 4): what B sees from now on counts.
    store.cred = { ...store.cred, metadata: { ...store.cred.metadata, generation: 4 } };
    await b.writer.pass();
    assert.deepEqual(condition(store), ['True', 'AlwaysPullSeen']);
  });
});

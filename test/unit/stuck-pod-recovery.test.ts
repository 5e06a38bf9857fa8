// The stuck-Pod recovery as a tenant (or a broken webhook) can drive it: a POST that is not the
// API server's review proves nothing, a replacement Pod that comes back stuck stops evictions of
// its owner (never a loop), and the rate limit delays evictions without losing any.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import type { V1Pod, V1ServiceAccount } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { Subject } from 'rxjs';
import type { Clock } from '../../src/clock.ts';
import type { NamespaceInfo } from '../../src/controller/selection.ts';
import type { ClusterCaches } from '../../src/kube/cluster-view.ts';
import type { InformerEvent } from '../../src/kube/informer.ts';
import type { KubeRest, RestRequest } from '../../src/kube/rest.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { memoizedImageMatcher } from '../../src/webhook/image-matcher.ts';
import { MUTATE_PODS_PATH, PodWebhookServer } from '../../src/webhook/pod-webhook.ts';
import {
  EVICTION_LOOP_WINDOW_MS,
  type PodSource,
  StuckPodRecovery,
} from '../../src/webhook/stuck-pod-recovery.ts';
import { decideStuckPod } from '../../src/webhook/stuck-pods.ts';
import { WebhookMetrics } from '../../src/webhook/webhook-metrics.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';
import { ourSecret as ours, readyCredential, teamA } from '../support/webhook-fixtures.ts';

const credential = readyCredential('registry.example.com');

/** The ServiceAccount has no entry yet: only the webhook would give a replacement the Secret. */
const bareSa: V1ServiceAccount = { metadata: { name: 'default', namespace: 'team-a' } };

function stuckPod(name: string, createdAt: number, owner = 'rs-1'): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'team-a',
      uid: `uid-${name}`,
      creationTimestamp: new Date(Math.floor(createdAt / 1000) * 1000),
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: owner, uid: owner, controller: true },
      ],
    },
    spec: { containers: [{ name: 'app', image: 'registry.example.com/team/app:1' }] },
    status: {
      phase: 'Pending',
      containerStatuses: [
        {
          name: 'app',
          image: 'registry.example.com/team/app:1',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ImagePullBackOff' } },
        },
      ],
    },
  };
}

class FakePods implements PodSource {
  readonly events = new Subject<InformerEvent<V1Pod>>();
  readonly events$ = this.events.asObservable();
  readonly synced = Promise.resolve();
  readonly pods = new Map<string, V1Pod>();
  get(key: string) {
    return this.pods.get(key);
  }
  health() {
    return { synced: true, healthy: true };
  }
  start() {}
  async stop() {}
  add(pod: V1Pod) {
    this.pods.set(`${pod.metadata?.namespace}/${pod.metadata?.name}`, pod);
    this.events.next({ type: 'add', object: pod });
  }
  remove(key: string) {
    const pod = this.pods.get(key);
    this.pods.delete(key);
    if (pod) this.events.next({ type: 'delete', object: pod });
  }
}

function fakeCaches(namespace: NamespaceInfo = teamA): ClusterCaches {
  return {
    namespace: () => namespace,
    credentials: () => [credential],
    unmanagedSecret: () => undefined,
    managedSecret: () => ours,
    serviceAccounts: () => [bareSa],
  } as unknown as ClusterCaches;
}

function harness(
  o: { webhookServing?: () => boolean; evictionRate?: { qps: number; burst: number } } = {},
) {
  let now = Date.parse('2026-06-01T12:00:00Z');
  const clock: Clock = { now: () => now, schedule: () => () => {} };
  const pods = new FakePods();
  const calls: RestRequest[] = [];
  const rest = {
    async send(req: RestRequest) {
      calls.push(req);
      // The eviction deletes the Pod, as the API server would.
      const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/.exec(req.path);
      if (m) pods.remove(`${m[1]}/${m[2]}`);
      return {};
    },
  } as unknown as KubeRest;
  const recovery = new StuckPodRecovery({
    kc: undefined as never,
    rest,
    caches: fakeCaches(),
    log: silentLogger,
    registry: new Registry(),
    matchesImage: memoizedImageMatcher().matches,
    evict: true,
    webhookServing: o.webhookServing ?? (() => true),
    unhealthyAfterMs: 60_000,
    identity: 'test',
    clock,
    pods,
    ...(o.evictionRate ? { evictionRate: o.evictionRate } : {}),
  });
  return {
    recovery,
    pods,
    evictions: () => calls.filter((c) => c.path.endsWith('/eviction')).map((c) => c.path),
    events: () =>
      calls
        .filter((c) => c.path.endsWith('/events'))
        .map((c) => (c.body as { message: string }).message),
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

function post(port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: MUTATE_PODS_PATH,
        method: 'POST',
        ca: testCertificates().caCert,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('stuck-Pod recovery against what a tenant can do', () => {
  it('a POST of {} (any Pod can reach the Service) does not prove the webhook serving', async () => {
    let now = Date.parse('2026-06-01T12:00:00Z');
    const server = new PodWebhookServer({
      caches: {
        namespace: (name) => (name === 'team-a' ? teamA : undefined),
        credentials: () => [credential],
        unmanagedSecret: () => null,
        waitForNamespace: async () => undefined,
      },
      metrics: new WebhookMetrics(new Registry()),
      log: silentLogger,
      now: () => now,
    });
    const { serverCert, serverKey } = testCertificates();
    server.setCertificate({ cert: serverCert, key: serverKey });
    const port = await server.listen('127.0.0.1:0');
    try {
      const serving = () => server.reviewedWithin(5 * 60_000);
      const decide = () =>
        decideStuckPod(stuckPod('app-1', now - 60_000), {
          namespace: teamA,
          credentials: [credential],
          unmanagedSecret: () => null,
          managedSecret: () => ours,
          serviceAccount: () => bareSa,
          webhookServing: serving(),
          matchesImage: memoizedImageMatcher().matches,
        }).kind;
      for (const junk of [
        '{}',
        '{"request":{}}',
        '{"request":{"uid":"x","operation":"CREATE","kind":{"kind":"Pod"},"namespace":"nowhere","object":{}}}',
      ]) {
        assert.equal((await post(port, junk)) < 500, true);
        assert.equal(decide(), 'wait', `after ${junk}`);
      }
      // The API server's review of a Pod in a known namespace does; for a while only.
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'r1',
          operation: 'CREATE',
          kind: { kind: 'Pod' },
          namespace: 'team-a',
          object: { metadata: { name: 'p' }, spec: { containers: [] } },
        },
      };
      assert.equal(await post(port, JSON.stringify(review)), 200);
      assert.equal(decide(), 'evict');
      now += 5 * 60_000 + 1;
      assert.equal(decide(), 'wait', 'a webhook configuration deleted since stops counting');
    } finally {
      await server.close();
    }
  });

  it('a namespace labelled regcred.dev/ignore=true, which the webhook never sees, waits for the ServiceAccount entry', () => {
    const ignored = { ...teamA, labels: { ...teamA.labels, 'regcred.dev/ignore': 'true' } };
    const decision = decideStuckPod(stuckPod('app-1', Date.now()), {
      namespace: ignored,
      credentials: [credential],
      unmanagedSecret: () => null,
      managedSecret: () => ours,
      serviceAccount: () => bareSa,
      webhookServing: true,
      matchesImage: memoizedImageMatcher().matches,
    });
    assert.equal(decision.kind, 'wait');
  });

  it('replacement Pods stuck again: at most one eviction per owner per window, and an Event', async () => {
    const h = harness();
    h.pods.add(stuckPod('app-1', h.now() - 60_000));
    await h.recovery.pass();
    assert.equal(h.evictions().length, 1);
    // The ReplicaSet's replacements come back without the Secret (the webhook is not adding
    // it, whatever a POST claimed), one after the other.
    for (let i = 2; i <= 20; i++) {
      h.advance(5_000);
      h.pods.add(stuckPod(`app-${i}`, h.now()));
      await h.recovery.pass();
      h.pods.remove(`team-a/app-${i}`); // deleted by someone else, or still stuck: no matter
    }
    assert.equal(h.evictions().length, 1, 'no eviction loop');
    assert.equal(
      h.events().filter((m) => /replacement was created without the Secret/.test(m)).length >= 1,
      true,
    );
    // Another ReplicaSet is not held by this one's loop.
    h.pods.add(stuckPod('other-1', h.now() - 60_000, 'rs-2'));
    await h.recovery.pass();
    assert.equal(h.evictions().length, 2);
    // After the window, one more try for the first owner, then held again.
    h.advance(EVICTION_LOOP_WINDOW_MS);
    h.pods.add(stuckPod('app-30', h.now() - 1_000));
    await h.recovery.pass();
    h.advance(5_000);
    h.pods.add(stuckPod('app-31', h.now()));
    await h.recovery.pass();
    assert.equal(h.evictions().filter((p) => /app-/.test(p)).length, 2);
  });

  it('siblings already stuck before the first eviction are each evicted once', async () => {
    const h = harness({ evictionRate: { qps: 100, burst: 100 } });
    for (let i = 1; i <= 3; i++) h.pods.add(stuckPod(`app-${i}`, h.now() - 60_000));
    await h.recovery.pass();
    assert.equal(h.evictions().length, 3);
  });

  it('10 stuck evictable Pods (burst 5, 1 per second): all evicted within ~10 s of passes, none left stuck', async () => {
    const h = harness();
    for (let i = 1; i <= 10; i++) {
      h.pods.add(stuckPod(`app-${i}`, h.now() - 60_000, `rs-${i}`));
    }
    // A pass every 2 s, as lead() schedules them.
    for (let pass = 0; pass < 6; pass++) {
      await h.recovery.pass();
      h.advance(2_000);
    }
    assert.equal(h.evictions().length, 10);
  });
});

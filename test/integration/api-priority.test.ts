// API Priority and Fairness turns a client away with 429 and Retry-After. The transport
// (src/kube/rest.ts) must wait and send again, as client-go does, within the call's deadline.
// The 429s are made certain rather than a matter of load: our flow goes to a priority level
// with no seats of its own and none to borrow, which still runs one request when none runs
// (so that nothing starves); a LIST of ~14 MB whose body we do not read keeps the API server's
// handler blocked on writing it, holding that one seat, and every other request of the flow
// is rejected until we let it go.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeRest, type RestResponse } from '../../src/kube/rest.ts';
import { uniqueName } from '../support/names.ts';
import { metricSum, parseMetrics } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster } from './hooks.ts';

const REJECTED = 'apiserver_flowcontrol_rejected_requests_total';

interface Version {
  gitVersion?: string;
}

describe('429 and Retry-After from API Priority and Fairness (a real API server)', function () {
  this.timeout(180_000);
  const namespace = uniqueName('apf');
  const level = uniqueName('no-seats');
  const schema = uniqueName('throttled');
  let throttled: KubeConfig;
  let held: RestResponse | undefined;

  /** Requests of our flow the API server has rejected so far. */
  async function rejected(): Promise<number> {
    const text = await cluster.controlPlane.get('/metrics');
    return (
      metricSum(parseMetrics(text, new Set([REJECTED])), REJECTED, { flow_schema: schema }) ?? 0
    );
  }

  /** Takes the level's only seat with a LIST whose body is left unread. */
  async function holdTheSeat(): Promise<RestResponse> {
    const response = await new KubeRest(throttled).open({
      method: 'GET',
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      idleMs: 120_000,
    });
    response.body.on('error', () => {}); // destroyed on release
    assert.equal(response.statusCode, 200);
    return response;
  }

  function releaseTheSeat(): void {
    held?.body.destroy();
    held = undefined;
  }

  async function throttle(): Promise<void> {
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
        kind: 'FlowSchema',
        metadata: { name: schema },
        spec: {
          priorityLevelConfiguration: { name: level },
          matchingPrecedence: 500,
          distinguisherMethod: { type: 'ByUser' },
          rules: [
            {
              subjects: [{ kind: 'ServiceAccount', serviceAccount: { name: 'client', namespace } }],
              nonResourceRules: [{ verbs: ['get'], nonResourceURLs: ['/version'] }],
              resourceRules: [
                {
                  verbs: ['list'],
                  apiGroups: [''],
                  resources: ['configmaps'],
                  namespaces: [namespace],
                },
              ],
            },
          ],
        },
      }),
    });
    // Certain: with the seat held, a request of this flow is turned away (until the API
    // server has taken the FlowSchema in, the LIST holds a seat of another level: try again).
    const probe = new KubeRest(throttled, { maxRetries: 0 });
    await waitUntil('the flow to be throttled', async () => {
      releaseTheSeat();
      held = await holdTheSeat();
      try {
        await probe.send({ method: 'GET', path: '/version' }, 'get /version');
        return false;
      } catch (error) {
        return error instanceof KubeApiError && error.code === 429;
      }
    });
  }

  before(async () => {
    await cluster.kubectlOk(['create', 'namespace', namespace]);
    await cluster.kubectlOk(['create', 'serviceaccount', 'client', '-n', namespace]);
    await cluster.kubectlOk([
      'create',
      'role',
      'list-configmaps',
      '--verb=list',
      '--resource=configmaps',
      '-n',
      namespace,
    ]);
    await cluster.kubectlOk([
      'create',
      'rolebinding',
      'client',
      '--role=list-configmaps',
      `--serviceaccount=${namespace}:client`,
      '-n',
      namespace,
    ]);
    // Random, so no compression shrinks the LIST below what the sockets buffer.
    for (let i = 0; i < 16; i++) {
      await cluster.kubectlOk(['create', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: `ballast-${i}`, namespace },
          data: { blob: randomBytes(660_000).toString('base64') },
        }),
      });
    }
    const token = (
      await cluster.kubectlOk(['create', 'token', 'client', '-n', namespace, '--duration=1h'])
    ).trim();
    const path = cluster.controlPlane.writeKubeconfigFor(
      join(cluster.controlPlane.dir, `${namespace}.kubeconfig`),
      'client',
      token,
    );
    throttled = new KubeConfig();
    throttled.loadFromFile(path);
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
        kind: 'PriorityLevelConfiguration',
        metadata: { name: level },
        spec: {
          type: 'Limited',
          limited: {
            nominalConcurrencyShares: 0,
            lendablePercent: 0,
            borrowingLimitPercent: 0,
            limitResponse: { type: 'Reject' },
          },
        },
      }),
    });
  });

  afterEach(async () => {
    releaseTheSeat();
    await cluster.kubectl(['delete', 'flowschema', schema, '--ignore-not-found']);
  });

  after(async () => {
    await cluster.kubectl(['delete', 'prioritylevelconfiguration', level, '--ignore-not-found']);
    await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('waits out the 429s, sending again as Retry-After says, and gets its answer once the seat is free', async () => {
    await throttle();
    const before = await rejected();
    const started = performance.now();
    const rest = new KubeRest(throttled);
    const call = rest.send<Version>({ method: 'GET', path: '/version' }, 'get /version');
    let settled = false;
    call.then(
      () => (settled = true),
      () => (settled = true),
    );
    // Paced, not hammering: a second rejection comes only after the server's Retry-After.
    await waitFor('a second 429 for the same call', rejected, (n) => n >= before + 2, {
      timeoutMs: 30_000,
    });
    assert.equal(settled, false, 'the call is still waiting, not failed');

    // The request holding the seat ends: the next retry gets through.
    releaseTheSeat();
    const version = await call;
    assert.match(version.gitVersion ?? '', /^v1\./);
    const tries = (await rejected()) - before;
    const elapsedMs = performance.now() - started;
    // Retry-After: 1 from APF: about one attempt a second, not a loop.
    assert.ok(tries <= 1 + elapsedMs / 900, `${tries} rejections in ${Math.round(elapsedMs)} ms`);
  });

  it('answers with the 429 when waiting would pass the deadline of the call', async () => {
    await throttle();
    const before = await rejected();
    const rest = new KubeRest(throttled, { timeoutMs: 500 });
    const started = performance.now();
    await assert.rejects(
      rest.send({ method: 'GET', path: '/version' }, 'get /version'),
      (error: unknown) => error instanceof KubeApiError && error.code === 429,
    );
    assert.ok(performance.now() - started < 500, 'it did not sit out a wait it could not finish');
    assert.equal((await rejected()) - before, 1, 'one request, no retry');
  });
});

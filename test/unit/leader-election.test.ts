import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Lease } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/kube/leader-election.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { standInKubeconfig } from '../support/kubeconfig.ts';
import { waitUntil } from '../support/wait.ts';

const LEASE_PATH = '/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock';

/**
 * One Lease behind the coordination API: reads, conditional replaces (409 on a stale
 * resourceVersion), creates; `failing` answers every request with a 500 at once.
 */
class LeaseServer {
  lease: V1Lease | undefined;
  reads = 0;
  /** Holder identities of the accepted writes, in order. */
  readonly writes: string[] = [];
  failedRequests = 0;
  failing = false;
  #rv = 1;
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += chunk;
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const status = (code: number, reason: string) =>
      send(code, { kind: 'Status', apiVersion: 'v1', code, reason, message: reason });
    if (this.failing) {
      this.failedRequests++;
      status(500, 'InternalError');
      return;
    }
    const path = req.url?.split('?')[0];
    if (req.method === 'GET' && path === LEASE_PATH) {
      this.reads++;
      if (this.lease) send(200, this.lease);
      else status(404, 'NotFound');
      return;
    }
    if (req.method === 'PUT' && path === LEASE_PATH) {
      const lease = JSON.parse(body) as V1Lease;
      if (lease.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) {
        status(409, 'Conflict');
        return;
      }
      this.#store(lease);
      send(200, this.lease);
      return;
    }
    if (req.method === 'POST' && path === LEASE_PATH.replace(/\/lock$/, '')) {
      if (this.lease) {
        status(409, 'AlreadyExists');
        return;
      }
      this.#store(JSON.parse(body) as V1Lease);
      send(201, this.lease);
      return;
    }
    status(404, 'NotFound');
  }

  #store(lease: V1Lease): void {
    this.lease = {
      ...lease,
      metadata: { ...lease.metadata, resourceVersion: String(++this.#rv) },
    };
    this.writes.push(lease.spec?.holderIdentity ?? '');
  }

  /** A Lease another replica holds, renewed just now. */
  heldBy(identity: string): void {
    this.lease = {
      metadata: { name: 'lock', namespace: 'ns', resourceVersion: String(++this.#rv) },
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: 15,
        renewTime: new Date().toISOString().replace('Z', '000Z') as unknown as Date,
        leaseTransitions: 0,
      },
    };
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }
}

describe('LeaderElector', () => {
  let server: LeaseServer;
  let elector: LeaderElector | undefined;
  const realDateNow = Date.now;

  beforeEach(() => {
    server = new LeaseServer();
  });

  afterEach(async () => {
    Date.now = realDateNow;
    await elector?.release();
    elector = undefined;
    await server.close();
  });

  it('judges expiry on the monotonic clock: a wall-clock step does not hand a live lease to a standby', async () => {
    server.heldBy('other');
    let monotonic = 1_000;
    const leading: AbortSignal[] = [];
    elector = new LeaderElector(standInKubeconfig(await server.listen()), {
      namespace: 'ns',
      name: 'lock',
      identity: 'me',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 10,
      log: silentLogger,
      onStartedLeading: (signal) => leading.push(signal),
      onStoppedLeading: () => {},
      clock: { now: () => monotonic },
    });
    elector.start();
    await waitUntil('the standby to read the Lease', () => server.reads >= 2);

    // NTP (or someone with `date -s`) moves the wall clock an hour ahead.
    const stepped = realDateNow() + 3_600_000;
    Date.now = () => stepped + (performance.now() % 1);
    const readsAtStep = server.reads;
    await waitUntil('several more rounds of the standby', () => server.reads >= readsAtStep + 5);
    assert.deepEqual(server.writes, [], 'the standby wrote the Lease of a live holder');
    assert.equal(leading.length, 0);

    // The holder really stops renewing for a lease duration: now the standby takes over.
    monotonic += 15_000;
    await waitUntil('the standby to take the Lease', () => server.writes.length > 0);
    assert.equal(server.writes[0], 'me');
    await waitUntil('onStartedLeading', () => leading.length === 1);
    assert.equal(leading[0]?.aborted, false, String(leading[0]?.reason));
    assert.equal(elector.leadership, leading[0]);
  });

  it('aborts the leadership signal at the renew deadline, before the next retry, when renewals fail fast', async () => {
    let stoppedLeading = 0;
    let failedAttemptsAtAbort = -1;
    let leadership: AbortSignal | undefined;
    elector = new LeaderElector(standInKubeconfig(await server.listen()), {
      namespace: 'ns',
      name: 'lock',
      identity: 'me',
      leaseDurationMs: 1_500,
      renewDeadlineMs: 1_000,
      retryPeriodMs: 700,
      log: silentLogger,
      onStartedLeading: (signal) => {
        leadership = signal;
        signal.addEventListener('abort', () => {
          failedAttemptsAtAbort = server.failedRequests;
        });
      },
      onStoppedLeading: () => stoppedLeading++,
    });
    elector.start();
    await waitUntil('leadership', () => leadership !== undefined);
    // Every renew from now on is refused at once (an API server answering 500s).
    server.failing = true;
    await waitUntil('the leadership signal to abort', () => leadership?.aborted === true, {
      timeoutMs: 5_000,
    });
    // Renews go at 0.7 s and 1.4 s after the last success; the deadline is at 1 s.
    assert.equal(failedAttemptsAtAbort, 1, 'aborted at the deadline, not at the next retry');
    assert.equal(leadership?.reason?.name, 'LeadershipEnded');
    assert.equal(stoppedLeading, 1);
    assert.equal(elector.isLeader, false);
  });

  it('renews as leader with one PUT of the Lease it last wrote, reading it only after a conflict', async () => {
    let leadership: AbortSignal | undefined;
    elector = new LeaderElector(standInKubeconfig(await server.listen()), {
      namespace: 'ns',
      name: 'lock',
      identity: 'me',
      retryPeriodMs: 10,
      log: silentLogger,
      onStartedLeading: (signal) => {
        leadership = signal;
      },
      onStoppedLeading: () => {},
    });
    elector.start();
    await waitUntil('leadership', () => leadership !== undefined);
    const readsAtLead = server.reads;
    const writesAtLead = server.writes.length;
    await waitUntil('five renewals', () => server.writes.length >= writesAtLead + 5);
    assert.equal(server.reads, readsAtLead, 'no GET before a renewal');

    // Someone else writes the Lease (say, kubectl): the next PUT conflicts, then a GET follows.
    server.heldBy('me');
    await waitUntil('a read after the conflict', () => server.reads > readsAtLead);
    const writes = server.writes.length;
    await waitUntil('renewals again', () => server.writes.length >= writes + 2);
    assert.equal(elector.isLeader, true);
  });

  it('aborts the leadership signal when the lease is released, and hands the Lease back', async () => {
    let leadership: AbortSignal | undefined;
    elector = new LeaderElector(standInKubeconfig(await server.listen()), {
      namespace: 'ns',
      name: 'lock',
      identity: 'me',
      retryPeriodMs: 10,
      log: silentLogger,
      onStartedLeading: (signal) => {
        leadership = signal;
      },
      onStoppedLeading: () => {},
    });
    elector.start();
    await waitUntil('leadership', () => leadership !== undefined);
    await elector.release();
    assert.equal(leadership?.aborted, true);
    assert.equal(server.lease?.spec?.holderIdentity, '');
  });
});

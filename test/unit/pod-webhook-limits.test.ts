// The webhook's HTTPS server is reachable from every Pod in the cluster (the Service): a client
// that trickles its headers or body, sends more than the API server ever would, or opens many
// requests at once must not hold the operator's sockets, memory or event loop.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/observability/logger.ts';
import {
  MAX_BODY_BYTES,
  MUTATE_PODS_PATH,
  PodWebhookServer,
} from '../../src/webhook/pod-webhook.ts';
import { WebhookMetrics } from '../../src/webhook/webhook-metrics.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';

function server(limits: ConstructorParameters<typeof PodWebhookServer>[0]['limits'] = {}) {
  let release: () => void = () => {};
  const blocked = new Promise<void>((resolve) => {
    release = resolve;
  });
  const s = new PodWebhookServer({
    caches: {
      namespace: () => undefined,
      credentials: () => [],
      unmanagedSecret: () => null,
      // A namespace the cache has not seen: the request waits here until released.
      waitForNamespace: async () => {
        await blocked;
        return undefined;
      },
    },
    metrics: new WebhookMetrics(new Registry()),
    log: silentLogger,
    limits,
  });
  const { serverCert, serverKey } = testCertificates();
  s.setCertificate({ cert: serverCert, key: serverKey });
  return { s, release: () => release() };
}

function review(): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'r1',
      operation: 'CREATE',
      kind: { kind: 'Pod' },
      namespace: 'team-a',
      object: { metadata: { name: 'p' }, spec: { containers: [] } },
    },
  });
}

function post(
  port: number,
  body: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: MUTATE_PODS_PATH,
        method: 'POST',
        ca: testCertificates().caCert,
        headers,
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('the Pod webhook server under a hostile client', () => {
  let registry: Registry;
  beforeEach(() => {
    registry = new Registry();
  });

  it('refuses a body over the API server limit from its Content-Length, without reading it', async function () {
    this.timeout(10_000);
    const { s } = server();
    const port = await s.listen('127.0.0.1:0');
    try {
      assert.ok(MAX_BODY_BYTES <= 3 * 1024 * 1024);
      const socket = connect({ host: '127.0.0.1', port, ca: testCertificates().caCert });
      await once(socket, 'secureConnect');
      // Announces 100 MiB, sends 1 KiB of it, and waits: the answer comes now.
      socket.write(
        `POST ${MUTATE_PODS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n${'x'.repeat(1024)}`,
      );
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      assert.match(chunk.toString(), /^HTTP\/1\.1 413 /);
      socket.destroy();
      // Chunked, without a length: cut off once over the limit.
      const big = await post(port, 'x'.repeat(MAX_BODY_BYTES + 1), {
        'content-type': 'application/json',
        'transfer-encoding': 'chunked',
      }).catch((error: Error) => ({ status: 0, body: error.message }));
      assert.ok(big.status === 413 || big.status === 0, `answered ${big.status}`);
    } finally {
      await s.close();
    }
  });

  it('cuts off a client that trickles its headers', async function () {
    this.timeout(10_000);
    const { s } = server({ headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const port = await s.listen('127.0.0.1:0');
    // Cleared however the test ends: a timer left running keeps mocha from exiting.
    let timer: NodeJS.Timeout | undefined;
    try {
      const socket = connect({ host: '127.0.0.1', port, ca: testCertificates().caCert });
      await once(socket, 'secureConnect');
      // Being cut off while writing the next line is a reset (ECONNRESET, or EPIPE when the write
      // itself fails): that is the answer. Wait for 'close' alone, since `once` would reject
      // on that error before the socket closed.
      const cutOff: Error[] = [];
      socket.on('error', (error) => cutOff.push(error));
      let isClosed = false;
      const closed = new Promise<void>((resolve) =>
        socket.once('close', () => {
          isClosed = true;
          resolve();
        }),
      );
      socket.write(`POST ${MUTATE_PODS_PATH} HTTP/1.1\r\nHost: x\r\n`);
      const started = Date.now();
      timer = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
      socket.resume();
      // At most 5 s, so a server that never cuts off fails here rather than at mocha's timeout
      // (which would leave this socket and timer behind).
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref());
      await Promise.race([closed, deadline]);
      if (!isClosed) socket.destroy();
      assert.ok(isClosed, `still open after ${Date.now() - started} ms`);
      assert.ok(
        cutOff.every((error) =>
          ['ECONNRESET', 'EPIPE'].includes((error as NodeJS.ErrnoException).code ?? ''),
        ),
        `the socket failed otherwise: ${cutOff.map((e) => e.message).join(', ')}`,
      );
      assert.ok(Date.now() - started < 5_000, `held ${Date.now() - started} ms`);
    } finally {
      clearInterval(timer);
      await s.close();
    }
  });

  it('refuses a body that is not JSON by its Content-Type', async () => {
    const { s } = server();
    const port = await s.listen('127.0.0.1:0');
    try {
      const answer = await post(port, review(), { 'content-type': 'text/plain' });
      assert.equal(answer.status, 415);
    } finally {
      await s.close();
    }
  });

  it('answers requests over its concurrency cap at once with 429, and the others as usual', async function () {
    this.timeout(10_000);
    const { s, release } = server({ maxConcurrentRequests: 2 });
    const port = await s.listen('127.0.0.1:0');
    try {
      const held = [post(port, review()), post(port, review())];
      // Until both are in (each waits for a namespace the cache has not seen).
      for (let i = 0; i < 500 && s.inFlight < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.inFlight, 2);
      const refused = await post(port, review());
      assert.equal(refused.status, 429);
      release();
      for (const answer of await Promise.all(held)) {
        assert.equal(answer.status, 200);
        assert.equal(JSON.parse(answer.body).response.allowed, true);
      }
    } finally {
      await s.close();
    }
  });

  it('frees its slot after every outcome: answered, unreadable, refused, too large, failed', async function () {
    this.timeout(10_000);
    let failing = false;
    const s = new PodWebhookServer({
      caches: {
        namespace: () => ({ name: 'team-a', labels: {}, annotations: {}, terminating: false }),
        credentials: () => {
          if (failing) throw new Error('a bug in the decision');
          return [];
        },
        unmanagedSecret: () => null,
        waitForNamespace: async () => undefined,
      },
      metrics: new WebhookMetrics(registry),
      log: silentLogger,
    });
    const { serverCert, serverKey } = testCertificates();
    s.setCertificate({ cert: serverCert, key: serverKey });
    const port = await s.listen('127.0.0.1:0');
    try {
      const ok = await post(port, review());
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body).response.uid, 'r1');
      assert.equal((await post(port, '{not json')).status, 400);
      assert.equal((await post(port, review(), { 'content-type': 'text/plain' })).status, 415);
      const big = await post(port, 'x'.repeat(MAX_BODY_BYTES + 1), {
        'content-type': 'application/json',
        'transfer-encoding': 'chunked',
      }).catch(() => ({ status: 413, body: '' }));
      assert.equal(big.status, 413);
      // A decision that throws still admits the Pod, unchanged, and counts an error.
      failing = true;
      const failed = await post(port, review());
      assert.equal(failed.status, 200);
      assert.deepEqual(JSON.parse(failed.body).response, { uid: 'r1', allowed: true });
      const errors = (
        await registry.getSingleMetric('regcred_pod_webhook_requests_total')?.get()
      )?.values.find((v) => v.labels.result === 'error')?.value;
      assert.equal(errors, 3);
      for (let i = 0; i < 100 && s.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.inFlight, 0);
      assert.equal(s.answered, 2);
    } finally {
      await s.close();
    }
  });

  it('admits unchanged a Pod whose namespace never arrives, and frees its slot', async () => {
    const { s, release } = server();
    const port = await s.listen('127.0.0.1:0');
    try {
      const answer = post(port, review());
      for (let i = 0; i < 500 && s.inFlight < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.inFlight, 1);
      release();
      const { status, body } = await answer;
      assert.equal(status, 200);
      assert.deepEqual(JSON.parse(body).response, { uid: 'r1', allowed: true });
      assert.equal(s.inFlight, 0);
    } finally {
      await s.close();
    }
  });
});

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeApiError, KubeRest, retryDelayMs } from '../../src/kube/rest.ts';
import { standInKubeconfig } from '../support/kubeconfig.ts';
import { waitUntil } from '../support/wait.ts';

interface Seen {
  at: number;
  method: string;
  body: string;
}

/**
 * An API server stand-in that answers each request with the next scripted answer (the last
 * one repeats): a status and, for 429s and 5xx, maybe a Retry-After.
 */
class ScriptedServer {
  readonly seen: Seen[] = [];
  script: Array<{ status: number; retryAfter?: string }> = [];
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        this.seen.push({ at: performance.now(), method: req.method ?? '', body });
        const answer = this.script[Math.min(this.seen.length - 1, this.script.length - 1)] ?? {
          status: 200,
        };
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
        res.writeHead(answer.status, headers);
        res.end(
          answer.status === 200
            ? JSON.stringify({ kind: 'Namespace', metadata: { name: 'n' } })
            : JSON.stringify({
                kind: 'Status',
                code: answer.status,
                reason: answer.status === 429 ? 'TooManyRequests' : 'InternalError',
                message: 'too many requests, please try again later',
              }),
        );
      });
    });
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

describe('KubeRest: 429 and Retry-After', () => {
  let server: ScriptedServer;
  let rest: KubeRest;

  beforeEach(async () => {
    server = new ScriptedServer();
    rest = new KubeRest(standInKubeconfig(await server.listen()), { maxRetries: 3 });
  });

  afterEach(async () => {
    await server.close();
  });

  const get = (extra: { timeoutMs?: number; signal?: AbortSignal } = {}) =>
    rest.send<{ metadata: { name: string } }>(
      { method: 'GET', path: '/api/v1/namespaces/n', ...extra },
      'get namespace n',
    );

  it('waits the Retry-After of each 429, then returns the answer', async () => {
    server.script = [
      { status: 429, retryAfter: '1' },
      { status: 429, retryAfter: '1' },
      { status: 200 },
    ];
    const namespace = await get();
    assert.equal(namespace.metadata.name, 'n');
    assert.equal(server.seen.length, 3);
    const [first, second, third] = server.seen.map((s) => s.at);
    assert.ok((second ?? 0) - (first ?? 0) >= 990, `waited ${(second ?? 0) - (first ?? 0)} ms`);
    assert.ok((third ?? 0) - (second ?? 0) >= 990, `waited ${(third ?? 0) - (second ?? 0)} ms`);
  });

  it('sends the same body again when it retries a write', async () => {
    server.script = [{ status: 429, retryAfter: '0' }, { status: 200 }];
    await rest.send(
      { method: 'POST', path: '/api/v1/namespaces', body: { metadata: { name: 'n' } } },
      'create namespace n',
    );
    assert.deepEqual(
      server.seen.map((s) => [s.method, s.body]),
      [
        ['POST', '{"metadata":{"name":"n"}}'],
        ['POST', '{"metadata":{"name":"n"}}'],
      ],
    );
  });

  it('retries a bounded number of times, then fails with the 429', async () => {
    server.script = [{ status: 429, retryAfter: '0' }];
    const error = await get().then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof KubeApiError);
    assert.equal(error.code, 429);
    assert.equal(error.reason, 'TooManyRequests');
    assert.equal(server.seen.length, 4, 'the first attempt and maxRetries = 3 retries');
  });

  it('answers with the 429 at once when the wait would pass the call deadline', async () => {
    server.script = [{ status: 429, retryAfter: '5' }, { status: 200 }];
    const started = performance.now();
    await assert.rejects(get({ timeoutMs: 2_000 }), (e: unknown) => {
      return e instanceof KubeApiError && e.code === 429;
    });
    assert.ok(performance.now() - started < 1_500, 'it did not sit out the deadline');
    assert.equal(server.seen.length, 1);
  });

  it('stops waiting when the caller aborts (a lost leadership), and sends nothing more', async () => {
    server.script = [{ status: 429, retryAfter: '5' }, { status: 200 }];
    const leadership = new AbortController();
    const call = get({ signal: leadership.signal });
    await waitUntil('the first attempt', () => server.seen.length === 1);
    const abortedAt = performance.now();
    leadership.abort(new Error('lost leadership'));
    await assert.rejects(call, (e: unknown) => {
      return e instanceof KubeApiError && e.code === 0 && /lost leadership/.test(e.message);
    });
    assert.ok(performance.now() - abortedAt < 1_000, 'it stopped waiting at once');
    assert.equal(server.seen.length, 1);
  });

  it('retries a 5xx only when it carries Retry-After, and never another 4xx', async () => {
    server.script = [{ status: 503, retryAfter: '0' }, { status: 200 }];
    await get();
    assert.equal(server.seen.length, 2);

    server.seen.length = 0;
    server.script = [{ status: 500 }, { status: 200 }];
    await assert.rejects(get(), (e: unknown) => e instanceof KubeApiError && e.code === 500);
    assert.equal(server.seen.length, 1);

    server.seen.length = 0;
    server.script = [{ status: 409, retryAfter: '0' }, { status: 200 }];
    await assert.rejects(get(), (e: unknown) => e instanceof KubeApiError && e.code === 409);
    assert.equal(server.seen.length, 1);
  });

  it('reads Retry-After as whole seconds, as client-go does', () => {
    assert.equal(retryDelayMs(429, '2'), 2_000);
    assert.equal(retryDelayMs(429, ['3']), 3_000);
    assert.equal(retryDelayMs(429, undefined), undefined);
    assert.equal(retryDelayMs(429, 'Wed, 21 Oct 2026 07:28:00 GMT'), undefined);
    assert.equal(retryDelayMs(502, '1'), 1_000);
    assert.equal(retryDelayMs(404, '1'), undefined);
  });
});

// The watch stream of kubeListWatch against an HTTP stand-in that controls how the bytes are
// cut into chunks: events split across chunks (inside a multi-byte character too), errors,
// idle streams, refusals. The informer's behaviour on a real API server is in
// test/integration/informer.test.ts.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeApiError } from '../../src/kube/api.ts';
import { isExpired, kubeListWatch } from '../../src/kube/list-watch.ts';
import { standInKubeconfig } from '../support/kubeconfig.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

class StandIn {
  handler: Handler = (_req, res) => res.end();
  readonly urls: string[] = [];
  readonly headers: IncomingMessage['headers'][] = [];
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req, res) => {
      this.urls.push(req.url ?? '');
      this.headers.push(req.headers);
      this.handler(req, res);
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

interface Outcome {
  events: Array<{ type: string; object: unknown }>;
  done: Promise<unknown>;
  doneCalls: () => number;
}

describe('kubeListWatch', () => {
  let api: StandIn;
  let server: string;

  beforeEach(async () => {
    api = new StandIn();
    server = await api.listen();
  });

  afterEach(() => api.close());

  async function watch(
    idleMs = 5_000,
    onEach: (type: string) => void = () => {},
    requestTimeoutMs = 5_000,
  ): Promise<Outcome & { abort(): void }> {
    const lw = kubeListWatch(standInKubeconfig(server, { token: 'stand-in-token' }), {
      watchIdleTimeoutMs: idleMs,
      requestTimeoutMs,
    });
    const events: Outcome['events'] = [];
    let calls = 0;
    let resolveDone: (err: unknown) => void = () => {};
    const done = new Promise<unknown>((r) => {
      resolveDone = r;
    });
    const handle = await lw.watch(
      '/api/v1/configmaps',
      { resourceVersion: '41', labelSelector: 'a=b,c in (d)', allowWatchBookmarks: true },
      (type, object) => {
        events.push({ type, object });
        onEach(type);
      },
      (err) => {
        calls += 1;
        resolveDone(err);
      },
    );
    return { events, done, doneCalls: () => calls, abort: () => handle.abort() };
  }

  it('delivers every event whole, however the stream is cut, then ends cleanly', async () => {
    const objects = [
      { metadata: { name: 'a', resourceVersion: '42' }, data: { k: 'ünïcödé ✓ 🚀' } },
      { metadata: { name: 'b', resourceVersion: '43' }, data: { k: 'x'.repeat(70_000) } },
      { metadata: { name: 'c', resourceVersion: '44' } },
    ];
    const bytes = Buffer.from(
      `${objects.map((object, i) => JSON.stringify({ type: i === 2 ? 'DELETED' : 'ADDED', object })).join('\n')}\n`,
    );
    api.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Cuts everywhere: inside the 2-byte ü and the 4-byte emoji, a byte at a time for a
      // while, just before and after the first line break, inside the long line.
      const u = bytes.indexOf(Buffer.from('ü'));
      const rocket = bytes.indexOf(Buffer.from('🚀'));
      const nl = bytes.indexOf(0x0a);
      const cuts = [1, 2, 3, u + 1, rocket + 1, rocket + 2, rocket + 3, nl, nl + 1, 5000, 70_100];
      let from = 0;
      const send = (i: number): void => {
        const to = i < cuts.length ? Math.min(cuts[i] ?? bytes.length, bytes.length) : bytes.length;
        res.write(bytes.subarray(from, to));
        from = to;
        if (from < bytes.length) setImmediate(() => send(i + 1));
        else res.end();
      };
      send(0);
    };
    const w = await watch();
    assert.equal(await w.done, undefined);
    assert.deepEqual(
      w.events.map((e) => e.type),
      ['ADDED', 'ADDED', 'DELETED'],
    );
    assert.deepEqual(
      w.events.map((e) => e.object),
      objects,
    );
    assert.equal(w.doneCalls(), 1);
    const url = new URL(api.urls[0] ?? '', server);
    assert.equal(url.pathname, '/api/v1/configmaps');
    assert.equal(url.searchParams.get('watch'), 'true');
    assert.equal(url.searchParams.get('resourceVersion'), '41');
    assert.equal(url.searchParams.get('labelSelector'), 'a=b,c in (d)');
    assert.equal(url.searchParams.get('allowWatchBookmarks'), 'true');
    assert.equal(api.headers[0]?.authorization, 'Bearer stand-in-token');
  });

  it('asks for a watch-list with sendInitialEvents and resourceVersionMatch=NotOlderThan', async () => {
    api.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end();
    };
    const lw = kubeListWatch(standInKubeconfig(server, { token: 'stand-in-token' }));
    const done = new Promise<unknown>((resolve) => {
      void lw.watch(
        '/api/v1/secrets',
        {
          labelSelector: 'a=b',
          allowWatchBookmarks: true,
          sendInitialEvents: true,
          resourceVersionMatch: 'NotOlderThan',
        },
        () => {},
        resolve,
      );
    });
    await done;
    const url = new URL(api.urls[0] ?? '', server);
    assert.equal(url.searchParams.get('watch'), 'true');
    assert.equal(url.searchParams.get('sendInitialEvents'), 'true');
    assert.equal(url.searchParams.get('resourceVersionMatch'), 'NotOlderThan');
    assert.equal(url.searchParams.get('allowWatchBookmarks'), 'true');
    assert.equal(url.searchParams.has('resourceVersion'), false, 'the latest state');
  });

  it('ends with an error, not a skipped event, when a line is not JSON', async () => {
    api.handler = (_req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
      res.write('{"type":"ADDED","object":{"metadata"\n');
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'c' } } })}\n`);
      res.end();
    };
    const w = await watch();
    const err = await w.done;
    assert.ok(err instanceof KubeApiError, String(err));
    assert.match(err.message, /watch \/api\/v1\/configmaps: a line is not JSON/);
    assert.deepEqual(
      w.events.map((e) => (e.object as { metadata: { name: string } }).metadata.name),
      ['a'],
    );
    assert.equal(w.doneCalls(), 1);
  });

  for (const [what, body] of [
    ['a line that is JSON but not an event (null)', 'null\n'],
    ['a stream that ends inside a line', '{"type":"ADDED","object":{"metadata":{"na'],
  ] as const) {
    it(`ends with an error on ${what}`, async () => {
      api.handler = (_req, res) => {
        res.writeHead(200);
        res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
        res.end(body);
      };
      const w = await watch();
      const err = await w.done;
      assert.ok(err instanceof KubeApiError, String(err));
      assert.equal(err.reason, 'BadResponse');
      assert.equal(w.events.length, 1);
      assert.equal(w.doneCalls(), 1);
    });
  }

  it('ends with the error, once, when the event handler throws (the process lives on)', async () => {
    api.handler = (_req, res) => {
      res.writeHead(200);
      // In the same packet as the headers, then more: both delivery paths of a chunk.
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
      setImmediate(() =>
        res.write(`${JSON.stringify({ type: 'BOOM', object: { metadata: { name: 'b' } } })}\n`),
      );
    };
    const w = await watch(5_000, (type) => {
      if (type === 'BOOM') throw new Error('handler failed');
    });
    const err = await w.done;
    assert.equal((err as Error).message, 'handler failed');
    assert.equal(w.doneCalls(), 1);
  });

  it('reports a server that accepts and never answers as Unreachable, not as a quiet watch', async () => {
    api.handler = () => {
      // Never writes the headers.
    };
    const w = await watch(60_000, undefined, 300);
    const err = await w.done;
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.reason, 'Unreachable');
  });

  it('reports a refusal with its HTTP status and the Status message (410: expired)', async () => {
    api.handler = (_req, res) => {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          code: 410,
          reason: 'Expired',
          message: 'too old resource version: 41 (500)',
        }),
      );
    };
    const w = await watch();
    const err = await w.done;
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.code, 410);
    assert.ok(isExpired(err));
    assert.match(err.message, /too old resource version/);
  });

  it('ends a stream that stays idle with a TimeoutError (the end of a quiet watch)', async () => {
    api.handler = (_req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: {} } })}\n`);
      // Then nothing, with the connection open.
    };
    const w = await watch(300);
    const err = await w.done;
    assert.equal((err as Error).name, 'TimeoutError', String(err));
    assert.deepEqual(
      w.events.map((e) => e.type),
      ['BOOKMARK'],
    );
  });

  it('calls onDone once when aborted, and closes the connection', async () => {
    let closed: Promise<void> | undefined;
    api.handler = (_req, res) => {
      closed = new Promise((r) => res.on('close', () => r()));
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
    };
    const w = await watch();
    while (w.events.length === 0) await new Promise((r) => setImmediate(r));
    w.abort();
    assert.equal(await w.done, undefined);
    await closed;
    assert.equal(w.events.length, 1);
    assert.equal(w.doneCalls(), 1);
  });

  it('reports a connection refused as Unreachable (code 0) without the token', async () => {
    await api.close();
    const w = await watch();
    const err = await w.done;
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.code, 0);
    assert.equal(err.reason, 'Unreachable');
    assert.doesNotMatch(err.message, /stand-in-token/);
    // Lets afterEach close it again.
    api = new StandIn();
  });
});

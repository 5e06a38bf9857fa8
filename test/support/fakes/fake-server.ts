// The small HTTP(S) server every cloud fake is built on: listens on 127.0.0.1 port 0, records
// each request (method, path, query, headers, body), and answers through the fake's handler,
// unless a test queued a failure for the next requests.
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { testCertificates } from './test-ca.ts';

export interface RecordedCall {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** Date.now() when the request had been read, before it was answered. */
  at: number;
}

export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
}

export type FakeHandler = (call: RecordedCall) => FakeResponse | Promise<FakeResponse>;

export interface FakeServerOptions {
  /** Serve HTTPS with the test CA's server certificate (see testCertificates().caCert). */
  tls?: boolean;
}

export class FakeServer {
  readonly calls: RecordedCall[] = [];
  readonly url: string;
  readonly #server: Server;
  readonly #failures: FakeResponse[] = [];

  private constructor(server: Server, url: string) {
    this.#server = server;
    this.url = url;
  }

  static async start(handler: FakeHandler, options: FakeServerOptions = {}): Promise<FakeServer> {
    let fake: FakeServer | undefined;
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://fake');
        const call: RecordedCall = {
          method: req.method ?? 'GET',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
        };
        fake?.calls.push(call);
        const failure = fake?.takeFailure();
        Promise.resolve()
          .then(() => failure ?? handler(call))
          .catch((err: unknown): FakeResponse => ({ status: 500, body: { error: String(err) } }))
          .then((response) => {
            const body =
              response.body === undefined
                ? ''
                : typeof response.body === 'string'
                  ? response.body
                  : JSON.stringify(response.body);
            const headers: Record<string, string> = {
              'content-type': typeof response.body === 'string' ? 'text/plain' : 'application/json',
              ...response.headers,
            };
            res.writeHead(response.status, headers);
            res.end(body);
          });
      });
    };
    let server: Server;
    if (options.tls) {
      const certs = testCertificates();
      server = createHttpsServer({ cert: certs.serverCert, key: certs.serverKey }, listener);
    } else {
      server = createHttpServer(listener);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    fake = new FakeServer(server, `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`);
    return fake;
  }

  /** `host:port`, as GCE_METADATA_HOST and friends want it. */
  get host(): string {
    return new URL(this.url).host;
  }

  /** The next `times` requests get `response` instead of the fake's answer. */
  failNext(response: FakeResponse, times = 1): void {
    for (let i = 0; i < times; i++) this.#failures.push(response);
  }

  private takeFailure(): FakeResponse | undefined {
    return this.#failures.shift();
  }

  clearFailures(): void {
    this.#failures.length = 0;
  }

  callsTo(method: string, path: string | RegExp): RecordedCall[] {
    return this.calls.filter(
      (c) =>
        c.method === method && (typeof path === 'string' ? c.path === path : path.test(c.path)),
    );
  }

  reset(): void {
    this.calls.length = 0;
    this.#failures.length = 0;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** The body of a form-encoded request. */
export function formOf(call: RecordedCall): URLSearchParams {
  return new URLSearchParams(call.body);
}

/** A header's single value (node joins repeated ones). */
export function header(call: RecordedCall, name: string): string | undefined {
  const value = call.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** base64url JSON segments, for the unsigned JWTs the fakes hand out as opaque tokens. */
export function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (value: unknown): string =>
    Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  const signature = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.${signature}`;
}

/** A distinctive value a test can search for in messages: `<label>-<24 hex>`. */
export function distinctive(label: string): string {
  return `${label}-${Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString('hex')}`;
}

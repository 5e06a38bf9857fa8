import assert from 'node:assert/strict';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { KEEP_ALIVE_TIMEOUT_MS, shareConnections } from '../../src/kube/connections.ts';
import { KubeRest } from '../../src/kube/rest.ts';
import { makeTestCertificates, testCertificates } from '../support/fakes/test-ca.ts';
import { standInKubeconfig } from '../support/kubeconfig.ts';

// An HTTPS server that offers HTTP/2 first (as kube-apiserver does) and also speaks HTTP/1.1;
// it records the protocol of every request and every TCP connection it accepted.
class ApiServerLike {
  readonly versions: string[] = [];
  connections = 0;
  readonly #server: Http2SecureServer;

  constructor() {
    const { serverCert, serverKey } = testCertificates();
    this.#server = createSecureServer(
      { cert: serverCert, key: serverKey, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] },
      (req, res) => {
        this.versions.push(req.httpVersion);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          req.url === '/version'
            ? JSON.stringify({ major: '1', minor: '37', gitVersion: 'v1.37.2' })
            : JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: {}, items: [] }),
        );
      },
    );
    this.#server.on('secureConnection', (_socket: Socket) => {
      this.connections += 1;
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    return `https://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    await new Promise((r) => this.#server.close(r));
  }
}

describe('shareConnections', () => {
  let api: ApiServerLike;
  let url: string;

  beforeEach(async () => {
    api = new ApiServerLike();
    url = await api.listen();
  });

  afterEach(async () => {
    await api.close();
  });

  it('reuses kept-alive HTTP/1.1 connections across requests, though the server offers HTTP/2', async () => {
    const kc = shareConnections(standInKubeconfig(url, { ca: testCertificates().caCert }));
    const version = kc.makeApiClient(VersionApi);
    const core = kc.makeApiClient(CoreV1Api);
    for (let i = 0; i < 20; i++) {
      await version.getCode();
      await core.listNamespace();
    }
    assert.equal(api.versions.length, 40);
    assert.deepEqual(new Set(api.versions), new Set(['1.1']));
    // undici may open a second socket while the first is being released; never one per request.
    assert.ok(api.connections <= 2, `${api.connections} connections for 40 sequential requests`);
  });

  it('opens about one connection per request in flight, not one per request', async () => {
    const kc = shareConnections(standInKubeconfig(url, { ca: testCertificates().caCert }));
    const version = kc.makeApiClient(VersionApi);
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 4 }, () => version.getCode()));
    }
    assert.equal(api.versions.length, 12);
    assert.ok(api.connections <= 5, `${api.connections} connections for 4 requests in flight`);
  });

  it('without it, client-node opens a connection for every request (why this exists)', async () => {
    const version = standInKubeconfig(url, { ca: testCertificates().caCert }).makeApiClient(
      VersionApi,
    );
    for (let i = 0; i < 5; i++) await version.getCode();
    assert.equal(api.connections, 5);
  });

  it('gives a different CA its own dispatcher: a connection it cannot verify fails', async () => {
    const good = shareConnections(standInKubeconfig(url, { ca: testCertificates().caCert }));
    await good.makeApiClient(VersionApi).getCode();
    // Same KubeConfig object, new CA (a rotated cluster CA): the old pool must not be reused.
    const other = makeTestCertificates().caCert;
    const cluster = good.getCurrentCluster();
    assert.ok(cluster);
    (cluster as { caData?: string }).caData = Buffer.from(other).toString('base64');
    await assert.rejects(good.makeApiClient(VersionApi).getCode());
  });

  it("keeps idle connections past undici's 4 s default: a burst after 6 s idle opens none", async function () {
    this.timeout(20_000);
    // As kube-apiserver: HTTP/1.1 connections idle for 90 s are closed by the server, not sooner.
    let handshakes = 0;
    const { serverCert, serverKey } = testCertificates();
    const server = createHttpsServer(
      { cert: serverCert, key: serverKey, keepAliveTimeout: 90_000 },
      (_req, res) => {
        // Go's net/http sends no `Keep-Alive: timeout=` hint (node's server would, and undici
        // follows it): an explicit Connection header keeps node from adding one.
        res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive' });
        res.end('{"kind":"NamespaceList","items":[]}');
      },
    );
    server.on('secureConnection', () => {
      handshakes += 1;
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const kc = shareConnections(
        standInKubeconfig(`https://127.0.0.1:${port}`, { ca: testCertificates().caCert }),
      );
      const rest = new KubeRest(kc);
      const burst = () =>
        Promise.all(
          Array.from({ length: 4 }, () =>
            rest.send({ method: 'GET', path: '/api/v1/namespaces' }, 'list'),
          ),
        );
      await burst();
      const opened = handshakes;
      assert.ok(opened >= 1 && opened <= 4, `${opened} connections for 4 requests in flight`);
      await new Promise((r) => setTimeout(r, 6_000));
      await burst();
      assert.equal(handshakes, opened, 'the second burst reused the idle connections');
      assert.ok(KEEP_ALIVE_TIMEOUT_MS < 90_000, "below kube-apiserver's idle timeout");
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

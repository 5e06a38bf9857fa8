import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiServerProbe } from '../../src/kube/api-probe.ts';
import { standInKubeconfig } from '../support/kubeconfig.ts';
import { waitFor } from '../support/wait.ts';

// An API server stand-in that answers GET /version, or holds every request open (a SIGSTOPped
// kube-apiserver looks like this from a client: the TCP connection is accepted, nothing comes back).
class VersionServer {
  hung = false;
  served = 0;
  readonly #held: ServerResponse[] = [];
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (this.hung) {
        this.#held.push(res);
        return;
      }
      this.served += 1;
      res.writeHead(req.url === '/version' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ major: '1', minor: '37', gitVersion: 'v1.37.2' }));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const res of this.#held.splice(0)) res.destroy();
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }
}

describe('ApiServerProbe', () => {
  let api: VersionServer;
  let probe: ApiServerProbe | undefined;

  beforeEach(() => {
    api = new VersionServer();
  });

  afterEach(async () => {
    await probe?.stop();
    probe = undefined;
    await api.close();
  });

  it('stays healthy while the API server answers', async () => {
    probe = new ApiServerProbe(standInKubeconfig(await api.listen()), {
      unhealthyAfterMs: 400,
      intervalMs: 50,
    });
    probe.start();
    await waitFor(
      'a few answered probes',
      () => api.served,
      (n) => n >= 3,
      { timeoutMs: 5_000 },
    );
    assert.deepEqual(
      { healthy: probe.health().healthy, lastError: probe.health().lastError },
      { healthy: true, lastError: undefined },
    );
  });

  it('turns unhealthy when the API server stops answering (hung), and healthy again when it answers', async () => {
    probe = new ApiServerProbe(standInKubeconfig(await api.listen()), {
      unhealthyAfterMs: 400,
      intervalMs: 50,
    });
    probe.start();
    await waitFor(
      'a first answer',
      () => api.served,
      (n) => n >= 1,
      { timeoutMs: 5_000 },
    );
    api.hung = true;
    const hungAt = Date.now();
    const broken = await waitFor(
      'the probe to report the hung API server',
      () => probe?.health(),
      (h) => h?.healthy === false,
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    // Not before the budget: a slow answer is not an outage.
    assert.ok(Date.now() - hungAt >= 400, `unhealthy after only ${Date.now() - hungAt} ms`);
    assert.ok(broken?.brokenSince instanceof Date);
    assert.match(broken?.lastError ?? '', /answered|version|abort|timeout/i);

    api.hung = false;
    await waitFor(
      'the probe to see the API server again',
      () => probe?.health(),
      (h) => h?.healthy === true,
      { timeoutMs: 5_000, intervalMs: 20 },
    );
  });

  it('turns unhealthy when nothing listens, without leaking the token into the error', async () => {
    const url = await api.listen();
    await api.close();
    probe = new ApiServerProbe(standInKubeconfig(url), { unhealthyAfterMs: 300, intervalMs: 50 });
    probe.start();
    const broken = await waitFor(
      'the probe to report the refused connection',
      () => probe?.health(),
      (h) => h?.healthy === false,
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    assert.match(broken?.lastError ?? '', /GET \/version/);
    assert.ok(!(broken?.lastError ?? '').includes('not-a-real-token'));
    api = new VersionServer(); // afterEach closes a fresh one
  });

  it('stop() ends the loop promptly, even with a probe in flight', async () => {
    probe = new ApiServerProbe(standInKubeconfig(await api.listen()), {
      unhealthyAfterMs: 60_000,
      intervalMs: 50,
    });
    api.hung = true;
    probe.start();
    const began = Date.now();
    await probe.stop();
    assert.ok(Date.now() - began < 2_000, `stop took ${Date.now() - began} ms`);
  });
});

import assert from 'node:assert/strict';
import { request, type Server } from 'node:http';
import {
  boundPort,
  closeServer,
  type OperatorHealth,
  operatorProbes,
  serveHealth,
} from '../../src/observability/http.ts';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('/healthz and /readyz (ADR 0007)', () => {
  let server: Server | undefined;
  let health: OperatorHealth;

  beforeEach(async () => {
    health = { synced: false, healthy: true, detail: 'ok' };
    server = await serveHealth(
      '127.0.0.1:0',
      operatorProbes(() => health),
    );
  });

  afterEach(async () => {
    await closeServer(server);
  });

  it('is live but not ready before the caches have synced', async () => {
    const port = boundPort(server as Server);
    assert.equal((await get(port, '/healthz')).status, 200);
    const ready = await get(port, '/readyz');
    assert.equal(ready.status, 503);
    assert.match(ready.body, /not synced/);
  });

  it('stays live and ready while the API server is unreachable, and says so in the body', async () => {
    const port = boundPort(server as Server);
    health = {
      synced: true,
      healthy: false,
      detail: 'watch /api/v1/namespaces: connect ECONNREFUSED 10.0.0.1:443',
    };
    const live = await get(port, '/healthz');
    assert.equal(live.status, 200, 'a restart cannot bring the API server back');
    assert.match(live.body, /ECONNREFUSED/);
    assert.equal((await get(port, '/readyz')).status, 200, 'a synced cache stays ready');
  });

  it('answers 404 elsewhere', async () => {
    assert.equal((await get(boundPort(server as Server), '/livez')).status, 404);
  });
});

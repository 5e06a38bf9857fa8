// The operator's HTTP endpoints: /metrics on one address, /healthz and /readyz on another,
// as a Deployment's probes and a ServiceMonitor expect.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';

export interface HealthCheck {
  /** /healthz: false once an informer has been broken past its backoff budget. */
  healthy(): { ok: boolean; detail: string };
  /** /readyz: true once every cache has synced (standbys included). */
  ready(): { ok: boolean; detail: string };
}

function parseAddress(address: string): { host: string | undefined; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  return { host: host === '' ? undefined : host, port: Number(address.slice(i + 1)) };
}

async function listen(server: Server, address: string): Promise<Server> {
  const { host, port } = parseAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

export function serveMetrics(address: string, metrics: Metrics): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      metrics.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        })
        .catch((error: unknown) => {
          res.writeHead(500).end(error instanceof Error ? error.message : 'error');
        });
      return;
    }
    res.writeHead(404).end('not found\n');
  });
  return listen(server, address);
}

export function serveHealth(address: string, check: HealthCheck): Promise<Server> {
  const server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    const result =
      path === '/healthz' ? check.healthy() : path === '/readyz' ? check.ready() : undefined;
    if (!result) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(result.ok ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(`${result.ok ? 'ok' : 'failed'}: ${result.detail}\n`);
  });
  return listen(server, address);
}

export function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

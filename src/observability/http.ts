// The operator's HTTP endpoints: /metrics on one address, /healthz and /readyz on another,
// as a Deployment's probes and a ServiceMonitor expect. What each probe means is ADR 0007.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

export interface HealthCheck {
  /** /healthz, the liveness probe: would a restart help? */
  live(): ProbeResult;
  /** /readyz, the readiness probe: can this replica do its work (standbys included)? */
  ready(): ProbeResult;
}

/** What the operator reports about its caches and the API server (Operator.health()). */
export interface OperatorHealth {
  /** Every cache has had its first full list. */
  synced: boolean;
  /** No watch, and no request to the API server, has been failing past the budget. */
  healthy: boolean;
  detail: string;
}

/**
 * The probes as ADR 0007 defines them, following controller-runtime. Liveness is local: it
 * never fails because the API server is down or refuses us, since a restart cannot fix that
 * and would throw away warm caches (every replica relisting everything the moment the API
 * server returns); an answer at all proves the event loop is not stuck. The outage is still
 * reported, in the body. Readiness is "every cache has synced once": a replica serving from a
 * synced cache stays ready through an outage, so a rolling update does not stall on it.
 */
export function operatorProbes(health: () => OperatorHealth): HealthCheck {
  return {
    live: () => {
      const h = health();
      return {
        ok: true,
        detail: h.healthy ? 'ok' : `a restart would not help, but failing: ${h.detail}`,
      };
    },
    ready: () => {
      const h = health();
      return { ok: h.synced, detail: h.synced ? 'caches synced' : 'caches not synced yet' };
    },
  };
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
      path === '/healthz' ? check.live() : path === '/readyz' ? check.ready() : undefined;
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

// client-node 2.0.1 builds a new undici Agent for every request (KubeConfig.createDispatcher is
// not memoized), so every call pays a TCP and TLS handshake: the benchmark measured fan-out at
// 3.8× the floor and client CPU 3.5× higher because of it. Here the dispatcher is shared per
// (server, TLS material): connections are kept alive and reused, and a rotated client
// certificate (exec plugins) still gets a dispatcher of its own.
//
// Requests go over HTTP/1.1. undici offers HTTP/2 by default and the API server takes it, but
// undici's HTTP/2 path costs more CPU per request than its HTTP/1.1 one: on the benchmark's
// 1000-namespace fan-out, HTTP/1.1 cut the operator's CPU from 3.2–3.4 s to 2.8 s and the wall
// time from 4.2 s to 3.7 s (2 cores; `npm run bench`). Each watch then holds a connection of its
// own, and concurrent writes open up to --fanout-concurrency more, as client-go over HTTP/1.1.
//
// Idle connections are kept for KEEP_ALIVE_TIMEOUT_MS. undici's default is 4 s (kube-apiserver
// sends no `Keep-Alive: timeout` for it to follow), so every burst of writes (a fan-out, a
// rotation, the next credential) opened its pool again: new TLS handshakes were 3-5 % of the
// operator's CPU in the issue #20 profiles.
import type { KubeConfig } from '@kubernetes/client-node';
import { Agent } from 'undici';

/**
 * How long an idle connection is kept for the next request. kube-apiserver closes connections
 * idle for 90 s (its http.Server IdleTimeout, k8s.io/apiserver secure_serving.go); a request
 * sent on a connection the server is closing at that moment fails (undici does not resend it),
 * so the client must give up first, with a margin. 45 s also stays under the 60 s idle timeout
 * of common load balancers in front of API servers (AWS ELB/ALB defaults), and still bridges
 * the pauses between bursts (the 1 s coalescing of full reconciles, a rotation seconds apart).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 45_000;

interface DispatcherFactory {
  createDispatcher(cluster: unknown, agentOptions: unknown): unknown;
  createDispatcherOptions(cluster: unknown, agentOptions: unknown): DispatcherOptions;
}

/** client-node's plan for a dispatcher: a direct TLS agent, a proxy, or none. */
interface DispatcherOptions {
  type: string;
  connect?: Record<string, unknown>;
}

interface Dispatcher {
  dispatch(options: Record<string, unknown>, handler: unknown): unknown;
}

const MAX_DISPATCHERS = 8;

/** What makes two dispatchers interchangeable: the server and the TLS material. */
const TLS_FIELDS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'];

interface Entry {
  server: string;
  tls: unknown[];
  dispatcher: unknown;
}

function same(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => same(x, b[i]));
  return a === b;
}

/**
 * A dispatcher that sends every request over HTTP/1.1 (`allowH2: false` is a per-request
 * option of undici's Agent: it keeps a separate HTTP/1.1 pool per origin).
 */
function http1Only(dispatcher: unknown): unknown {
  const d = dispatcher as Partial<Dispatcher> | undefined;
  if (typeof d?.dispatch !== 'function') return dispatcher;
  const dispatch = d.dispatch.bind(d);
  d.dispatch = (options, handler) => dispatch({ ...options, allowH2: false }, handler);
  return d;
}

/**
 * client-node's direct TLS agent with the keep-alive above (its `createDispatcher` takes no
 * agent options); undefined for anything else (proxies, plain HTTP), which client-node builds.
 */
function keptAlive(
  factory: Partial<DispatcherFactory>,
  cluster: unknown,
  agentOptions: unknown,
): Agent | undefined {
  if (typeof factory.createDispatcherOptions !== 'function') return undefined;
  const options = factory.createDispatcherOptions(cluster, agentOptions);
  if (options.type !== 'agent' || !options.connect) return undefined;
  return new Agent({ connect: options.connect, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS });
}

/** Makes `kc` reuse one connection pool per API server and identity. Returns `kc`. */
export function shareConnections(kc: KubeConfig): KubeConfig {
  const factory = kc as unknown as Partial<DispatcherFactory>;
  const create = factory.createDispatcher;
  if (typeof create !== 'function') return kc;
  // client-node re-reads the CA and client certificate files for every request, so the lookup
  // compares contents (a few hundred bytes, cheaper than hashing them each time).
  const entries: Entry[] = [];
  factory.createDispatcher = (cluster: unknown, agentOptions: unknown): unknown => {
    const server = String((cluster as { server?: string } | undefined)?.server ?? '');
    const options = (agentOptions ?? {}) as Record<string, unknown>;
    const tls = TLS_FIELDS.map((field) => options[field]);
    const found = entries.find((e) => e.server === server && same(e.tls, tls));
    if (found) return found.dispatcher;
    if (entries.length >= MAX_DISPATCHERS) {
      // An old identity (rotated certificate): its pool closes once its requests finish.
      const old = entries.shift();
      void (old?.dispatcher as { close?: () => Promise<void> } | undefined)?.close?.();
    }
    const created =
      keptAlive(factory, cluster, agentOptions) ?? create.call(kc, cluster, agentOptions);
    // undefined: plain HTTP without TLS options; undici's global dispatcher serves it.
    const dispatcher = created === undefined ? undefined : http1Only(created);
    entries.push({ server, tls, dispatcher });
    return dispatcher;
  };
  return kc;
}

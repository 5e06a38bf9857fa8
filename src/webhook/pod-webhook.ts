// The Pod webhook's HTTPS endpoint: AdmissionReview v1 in, a JSON patch out. It reads only the
// caches every replica keeps (leader and standby both serve it) and never fails a Pod: any
// problem answers "allowed, unchanged" (the configuration's failurePolicy is Ignore as well).
// The certificate is swapped in place (setSecureContext), so a rotation needs no restart.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { V1Pod } from '@kubernetes/client-node';
import type { RegistryCredential } from '../api/types.ts';
import type { NamespaceInfo } from '../controller/selection.ts';
import type { Logger } from '../observability/logger.ts';
import {
  ephemeralContainersMutation,
  type ImageMatcher,
  type ManagedSecretLookup,
  type PrivateImageUse,
  podMutation,
  type UnmanagedSecretLookup,
} from './pod-mutation.ts';
import type { WebhookMetrics } from './webhook-metrics.ts';

export const MUTATE_PODS_PATH = '/mutate-pods';
/**
 * The API server's own limit on a request body (3 MiB): no review it sends is larger. The
 * Service is reachable from every Pod, so anything bigger is refused from its Content-Length,
 * or cut off once over, never buffered whole.
 */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** How long a client may take over its headers, and over its whole request. */
export interface ServerLimits {
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Requests being answered at once; more are answered 429 at once (failurePolicy Ignore). */
  maxConcurrentRequests?: number;
}

/** What the webhook reads: the caches. */
export interface AdmissionCaches {
  namespace(name: string): NamespaceInfo | undefined;
  credentials(): Iterable<RegistryCredential>;
  unmanagedSecret: UnmanagedSecretLookup;
  /** Secrets with our label (absent: not checked). */
  managedSecret?: ManagedSecretLookup;
  /**
   * Resolves with the namespace once the cache holds it, or undefined after `timeoutMs`: a Pod
   * can be created right after its namespace, before the namespace's watch event arrives here.
   */
  waitForNamespace(name: string, timeoutMs: number): Promise<NamespaceInfo | undefined>;
}

export interface PodAdmissionOptions {
  caches: AdmissionCaches;
  metrics: WebhookMetrics;
  log: Logger;
  matchesImage?: ImageMatcher;
  /** How long a Pod in a namespace the cache has not seen yet waits for it. */
  namespaceWaitMs?: number;
  /** Told the pull policies of containers using a credential's registries (PullIsolation). */
  observe?: (uses: readonly PrivateImageUse[]) => void;
  /**
   * Called for a well-formed review of a Pod being created in a namespace the cache knows (a
   * uid, kind Pod, CREATE, an object): what the API server sends. Not proof of who sent it
   * (any Pod can reach the Service; see the NetworkPolicy), only that it is not a stray POST.
   */
  reviewed?: () => void;
  /** The HTTPS server's timeouts and concurrency (defaults: 5 s, 10 s, 64). */
  limits?: ServerLimits;
}

interface AdmissionRequest {
  uid?: string;
  operation?: string;
  namespace?: string;
  subResource?: string;
  object?: V1Pod;
  oldObject?: V1Pod;
  kind?: { kind?: string };
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  patch?: string;
}

/** Decides one AdmissionReview request; never throws and always allows. */
export async function admitPod(
  request: AdmissionRequest,
  o: PodAdmissionOptions,
): Promise<AdmissionResponse> {
  return admit(request, o);
}

/**
 * admitPod, answered at once when the namespace is cached (every Pod but one created a moment
 * after its namespace): no Promise to allocate and resolve on the admission path.
 */
function admit(
  request: AdmissionRequest,
  o: PodAdmissionOptions,
): AdmissionResponse | Promise<AdmissionResponse> {
  const uid = request.uid ?? '';
  const pod = request.object;
  const nsName = request.namespace ?? pod?.metadata?.namespace ?? '';
  if (
    request.operation === 'UPDATE' &&
    request.subResource === 'ephemeralcontainers' &&
    pod &&
    request.kind?.kind === 'Pod'
  ) {
    return admitEphemeralContainers(uid, request, pod, o);
  }
  if (
    request.operation !== 'CREATE' ||
    request.subResource ||
    !pod ||
    !nsName ||
    request.kind?.kind !== 'Pod'
  ) {
    o.metrics.requests.inc({ result: 'unchanged' });
    return { uid, allowed: true };
  }
  const cached = o.caches.namespace(nsName);
  if (cached) return admitPodIn(cached, nsName, uid, request, pod, o);
  return o.caches.waitForNamespace(nsName, o.namespaceWaitMs ?? 1_500).then((namespace) => {
    if (!namespace) {
      o.log.warn('Pod admitted unchanged: its namespace is not in the cache', {
        namespace: nsName,
      });
      o.metrics.requests.inc({ result: 'error' });
      return { uid, allowed: true };
    }
    return admitPodIn(namespace, nsName, uid, request, pod, o);
  });
}

function admitPodIn(
  namespace: NamespaceInfo,
  nsName: string,
  uid: string,
  request: AdmissionRequest,
  pod: V1Pod,
  o: PodAdmissionOptions,
): AdmissionResponse {
  if (uid !== '') o.reviewed?.();
  const mutation = podMutation({
    pod,
    namespace,
    credentials: o.caches.credentials(),
    unmanagedSecret: o.caches.unmanagedSecret,
    ...(o.caches.managedSecret ? { managedSecret: o.caches.managedSecret } : {}),
    ...(o.matchesImage ? { matchesImage: o.matchesImage } : {}),
  });
  if (!request.dryRun) {
    o.observe?.(mutation.privateImages);
    for (const use of mutation.privateImages) {
      o.metrics.privateImagePulls.inc({
        registrycredential: use.credential,
        // A fixed set of values: the Pod's own string would make one series per tenant string.
        policy: use.setAlways ? 'Always' : use.arrivedWith,
      });
    }
    if (mutation.addedSecrets.length > 0) {
      for (const name of mutation.credentials) {
        o.metrics.secretsAdded.inc({ registrycredential: name });
      }
    }
  }
  if (mutation.patch.length === 0) {
    o.metrics.requests.inc({ result: 'unchanged' });
    return { uid, allowed: true };
  }
  o.metrics.requests.inc({ result: 'patched' });
  o.log.debug('Pod patched at admission', {
    namespace: nsName,
    pod: pod.metadata?.name ?? pod.metadata?.generateName ?? '',
    addedSecrets: mutation.addedSecrets,
    pullAlways: mutation.privateImages.filter((u) => u.setAlways).map((u) => u.container),
  });
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(mutation.patch)).toString('base64'),
  };
}

/** `kubectl debug`: pull policy Always on added ephemeral containers a credential asks it for. */
function admitEphemeralContainers(
  uid: string,
  request: AdmissionRequest,
  pod: V1Pod,
  o: PodAdmissionOptions,
): AdmissionResponse {
  if (!o.matchesImage) {
    o.metrics.requests.inc({ result: 'unchanged' });
    return { uid, allowed: true };
  }
  const mutation = ephemeralContainersMutation({
    pod,
    ...(request.oldObject ? { oldPod: request.oldObject } : {}),
    credentials: o.caches.credentials(),
    matchesImage: o.matchesImage,
  });
  if (!request.dryRun) {
    o.observe?.(mutation.privateImages);
    for (const use of mutation.privateImages) {
      o.metrics.privateImagePulls.inc({
        registrycredential: use.credential,
        policy: use.setAlways ? 'Always' : use.arrivedWith,
      });
    }
  }
  if (mutation.patch.length === 0) {
    o.metrics.requests.inc({ result: 'unchanged' });
    return { uid, allowed: true };
  }
  o.metrics.requests.inc({ result: 'patched' });
  o.log.debug('ephemeral containers set to pull Always', {
    namespace: request.namespace ?? '',
    pod: pod.metadata?.name ?? '',
  });
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(mutation.patch)).toString('base64'),
  };
}

export interface ServingPair {
  cert: string;
  key: string;
}

/** The HTTPS server; call `setCertificate` before `listen`, and again on every rotation. */
export class PodWebhookServer {
  private readonly server: Server;
  private readonly o: PodAdmissionOptions;
  private served?: ServingPair;
  private readonly now: () => number;
  /** When the last well-formed Pod review was answered (see `reviewed`). */
  private lastReview = Number.NEGATIVE_INFINITY;
  /** Requests answered with a review, well-formed or not (for tests and logs only). */
  answered = 0;
  /** Requests being read or answered now. */
  inFlight = 0;
  private readonly maxConcurrent: number;

  constructor(o: PodAdmissionOptions & { now?: () => number }) {
    this.now = o.now ?? Date.now;
    const reviewed = o.reviewed;
    this.o = {
      ...o,
      reviewed: () => {
        this.lastReview = this.now();
        reviewed?.();
      },
    };
    const limits = o.limits ?? {};
    // The API server sends a review in one go and waits at most timeoutSeconds (3 s) for it.
    const headersTimeout = limits.headersTimeoutMs ?? 5_000;
    const requestTimeout = limits.requestTimeoutMs ?? 10_000;
    this.maxConcurrent = limits.maxConcurrentRequests ?? 64;
    this.server = createServer(
      {
        minVersion: 'TLSv1.2',
        headersTimeout,
        requestTimeout,
        // How often the two timeouts above are checked (Node's default: every 30 s).
        connectionsCheckingInterval: Math.min(1_000, Math.max(50, headersTimeout / 4)),
      },
      (req, res) => {
        this.handle(req, res);
      },
    );
    // The API server keeps connections open between calls; a quiet one may close.
    this.server.keepAliveTimeout = 120_000;
    // A TLS handshake that never completes, or a connection that never sends anything, lasts
    // no longer than an idle keep-alive one; and there are at most this many at once.
    this.server.setTimeout(this.server.keepAliveTimeout, (socket) => socket.destroy());
    this.server.maxConnections = 1_024;
  }

  /** Serves `pair` to every new TLS handshake from now on (open connections keep theirs). */
  setCertificate(pair: ServingPair): void {
    if (this.served?.cert === pair.cert && this.served.key === pair.key) return;
    this.server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' });
    this.served = pair;
  }

  /**
   * A well-formed Pod review was answered within `windowMs`: the API server is calling us now
   * (an empty or malformed POST, which any Pod could send, proves nothing). Evidence that a
   * recreated Pod would get its Secret at admission, with a bounded age: a webhook
   * configuration deleted or broken stops counting after the window.
   */
  reviewedWithin(windowMs: number): boolean {
    return this.now() - this.lastReview <= windowMs;
  }

  get certificate(): ServingPair | undefined {
    return this.served;
  }

  listen(address: string): Promise<number> {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '') || undefined;
    const port = Number(address.slice(colon + 1));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const bound = this.server.address();
        resolve(typeof bound === 'object' && bound ? bound.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      setTimeout(() => this.server.closeAllConnections(), 2_000).unref();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.inFlight >= this.maxConcurrent) {
      // Not read: the API server's failurePolicy (Ignore) admits the Pod unchanged.
      this.o.metrics.requests.inc({ result: 'error' });
      refuse(req, res, 429);
      return;
    }
    this.inFlight += 1;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlight -= 1;
    };
    try {
      this.answer(req, res, finish);
    } catch (error) {
      finish();
      throw error;
    }
  }

  /**
   * Reads, decides and writes with callbacks, not Promises: at 8 requests in flight every
   * allocation and microtask on this path is paid on the event loop the API server is waiting
   * on. `finish` is called once the request is answered (or refused).
   */
  private answer(req: IncomingMessage, res: ServerResponse, finish: () => void): void {
    const started = performance.now();
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== MUTATE_PODS_PATH) {
      refuse(req, res, 404);
      finish();
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      refuse(req, res, 415);
      finish();
      return;
    }
    const length = Number(req.headers['content-length'] ?? Number.NaN);
    if (length > MAX_BODY_BYTES) {
      this.o.metrics.requests.inc({ result: 'error' });
      refuse(req, res, 413);
      finish();
      return;
    }
    readBody(req, (error, text) => {
      let review: { apiVersion?: string; request?: AdmissionRequest };
      try {
        if (error) throw error;
        review = JSON.parse(text) as typeof review;
      } catch (failure) {
        this.o.metrics.requests.inc({ result: 'error' });
        if (failure instanceof BodyTooLarge) {
          refuse(req, res, 413);
        } else {
          this.o.log.warn('Pod admission request unreadable', {
            error: failure instanceof Error ? failure.message : String(failure),
          });
          res.writeHead(400).end();
        }
        finish();
        return;
      }
      const respond = (response: AdmissionResponse) => {
        try {
          const body = JSON.stringify({
            apiVersion: review.apiVersion ?? 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response,
          });
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
          this.answered += 1;
          this.o.metrics.duration.observe((performance.now() - started) / 1000);
        } finally {
          finish();
        }
      };
      const failed = (failure: unknown): AdmissionResponse => {
        // Nothing in admitPod is expected to throw; a bug must still admit the Pod.
        this.o.metrics.requests.inc({ result: 'error' });
        this.o.log.error('Pod admission failed; admitted unchanged', {
          error: failure instanceof Error ? failure.message : String(failure),
        });
        return { uid: review.request?.uid ?? '', allowed: true };
      };
      let decided: AdmissionResponse | Promise<AdmissionResponse>;
      try {
        decided = admit(review.request ?? {}, this.o);
      } catch (failure) {
        decided = failed(failure);
      }
      if (decided instanceof Promise) decided.then(respond, (failure) => respond(failed(failure)));
      else respond(decided);
    });
  }
}

/** Answers `status` without reading the body, and closes the connection behind it. */
function refuse(req: IncomingMessage, res: ServerResponse, status: number): void {
  res.shouldKeepAlive = false;
  res.writeHead(status, { connection: 'close' }).end();
  // Whatever the client still sends is dropped, not buffered.
  req.on('data', () => {});
  res.on('finish', () => req.socket.destroySoon());
}

class BodyTooLarge extends Error {
  constructor() {
    super(`request body over ${MAX_BODY_BYTES} bytes`);
  }
}

/** The body as text, or BodyTooLarge once over MAX_BODY_BYTES (what came is then dropped). */
function readBody(req: IncomingMessage, done: (error: unknown, text: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (error: unknown, text: string) => {
    if (settled) return;
    settled = true;
    done(error, text);
  };
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      chunks.length = 0;
      req.removeAllListeners('data');
      settle(new BodyTooLarge(), '');
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    // A review (a few KB) is usually one chunk: no copy then.
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
    settle(undefined, body.toString('utf8'));
  });
  req.on('error', (error) => settle(error, ''));
}

// The webhook's own CA and serving certificate, kept in one Secret of the operator's namespace
// so every replica serves the same pair, and the caBundle of the MutatingWebhookConfiguration
// kept in step with it. Rotation never leaves the API server with a bundle that does not trust
// what is served: a new serving certificate under the same CA needs no bundle change; a new CA
// is first published next to the old one (the bundle holds both) and signs the serving
// certificate only `publishGraceMs` after the configuration was seen holding that bundle (the
// Secret's regcred.dev/ca-published-at, written then), when every API server has had time to
// load it. Until then the old pair is served for as long as it is valid.
import { X509Certificate } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../api/types.ts';
import { KubeApiError, type KubeRest, segment } from '../kube/rest.ts';
import type { Logger } from '../observability/logger.ts';
import {
  createCertificateAuthority,
  issueServingCertificate,
  type KeyAndCertificate,
} from './x509.ts';

export const CA_CERT_KEY = 'ca.crt';
export const CA_KEY_KEY = 'ca.key';
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';
/** The CAs the API server must trust: the current one, and the previous one while it is valid. */
export const CA_BUNDLE_KEY = 'ca-bundle.crt';
/** When the current CA was first published in the bundle (RFC 3339). */
export const CA_PUBLISHED_ANNOTATION = 'regcred.dev/ca-published-at';

export interface CertificateState {
  ca?: KeyAndCertificate;
  serving?: KeyAndCertificate;
  /** PEM certificates, current CA first. */
  bundle: string[];
  /**
   * When a caBundle holding the current CA was first seen published in the webhook
   * configuration; absent while it has not been (then nothing it signs is served yet).
   */
  caPublishedAt?: Date;
}

export interface RotationPolicy {
  hosts: readonly string[];
  caLifetimeMs: number;
  certLifetimeMs: number;
  /** How long a new CA sits in the bundle before it signs what is served. */
  publishGraceMs: number;
}

/** notBefore lies this far back: clocks of the API servers may be behind ours. */
const BACKDATE_MS = 5 * 60 * 1000;

/** Renewal at two thirds of the lifetime asked for (the backdating not counted). */
function renewAt(cert: X509Certificate): number {
  const from = cert.validFromDate.getTime();
  const to = cert.validToDate.getTime();
  return to - Math.max(0, to - from - BACKDATE_MS) / 3;
}

function parse(pem: string | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function coversHosts(cert: X509Certificate, hosts: readonly string[]): boolean {
  return hosts.every((host) =>
    /^[\d.]+$/.test(host) || host.includes(':')
      ? cert.checkIP(host) !== undefined
      : cert.checkHost(host, { subject: 'never' }) !== undefined,
  );
}

/**
 * The state to write, or undefined when `state` needs nothing at `now`. Pure: key generation
 * happens only for the parts it replaces.
 */
export function planCertificates(
  state: CertificateState,
  policy: RotationPolicy,
  now: Date,
): CertificateState | undefined {
  const t = now.getTime();
  const window = (lifetime: number) => ({
    notBefore: new Date(t - BACKDATE_MS),
    notAfter: new Date(t + lifetime),
  });
  const caCert = parse(state.ca?.cert);
  if (!state.ca || !caCert?.ca) {
    const ca = createCertificateAuthority(
      'regcred-operator webhook CA',
      window(policy.caLifetimeMs),
    );
    return {
      ca,
      serving: issueServingCertificate(ca, policy.hosts, window(policy.certLifetimeMs)),
      bundle: [ca.cert],
      caPublishedAt: now,
    };
  }
  const stillValid = (pem: string) => {
    const cert = parse(pem);
    return cert !== undefined && cert.validToDate.getTime() > t;
  };
  if (t >= renewAt(caCert)) {
    // A new CA, trusted next to the old one; what is served stays under the old one until
    // the bundle holding it has been published (caPublishedAt, set then) and the grace passed.
    const ca = createCertificateAuthority(
      'regcred-operator webhook CA',
      window(policy.caLifetimeMs),
    );
    return {
      ca,
      ...(state.serving ? { serving: state.serving } : {}),
      bundle: [ca.cert, caCert.toString()],
    };
  }
  const bundle = [caCert.toString(), ...state.bundle.filter((pem) => stillValid(pem))];
  const distinctBundle = [
    ...new Map(bundle.map((pem) => [new X509Certificate(pem).fingerprint256, pem])).values(),
  ];
  const serving = parse(state.serving?.cert);
  const published =
    state.caPublishedAt !== undefined && state.caPublishedAt.getTime() + policy.publishGraceMs <= t;
  const needsServing =
    !serving ||
    t >= renewAt(serving) ||
    !coversHosts(serving, policy.hosts) ||
    (!serving.checkIssued(caCert) && published);
  const bundleChanged = distinctBundle.join('') !== state.bundle.join('');
  if (!needsServing && !bundleChanged) return undefined;
  if (
    needsServing &&
    serving &&
    !serving.checkIssued(caCert) &&
    !published &&
    stillValid(serving.toString())
  ) {
    // Waiting for the new CA to reach every API server: keep serving the old pair.
    return bundleChanged ? { ...state, bundle: distinctBundle } : undefined;
  }
  return {
    ca: state.ca,
    serving: needsServing
      ? issueServingCertificate(state.ca, policy.hosts, window(policy.certLifetimeMs))
      : state.serving,
    bundle: distinctBundle,
    ...(state.caPublishedAt ? { caPublishedAt: state.caPublishedAt } : {}),
  };
}

function decode(value: string | undefined): string | undefined {
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

function splitPem(bundle: string | undefined): string[] {
  return (
    (bundle ?? '').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
  );
}

function publishedAnnotation(
  annotations: Record<string, string> | undefined,
  at: Date | undefined,
): Record<string, string> {
  const { [CA_PUBLISHED_ANNOTATION]: _previous, ...others } = annotations ?? {};
  return at ? { ...others, [CA_PUBLISHED_ANNOTATION]: at.toISOString() } : others;
}

export function stateFromSecret(secret: V1Secret | undefined): CertificateState {
  const data = secret?.data ?? {};
  const caCert = decode(data[CA_CERT_KEY]);
  const caKey = decode(data[CA_KEY_KEY]);
  const cert = decode(data[TLS_CERT_KEY]);
  const key = decode(data[TLS_KEY_KEY]);
  const published = secret?.metadata?.annotations?.[CA_PUBLISHED_ANNOTATION];
  const at = published ? new Date(published) : undefined;
  return {
    ...(caCert && caKey ? { ca: { cert: caCert, key: caKey } } : {}),
    ...(cert && key ? { serving: { cert, key } } : {}),
    bundle: splitPem(decode(data[CA_BUNDLE_KEY])),
    ...(at && !Number.isNaN(at.getTime()) ? { caPublishedAt: at } : {}),
  };
}

function secretData(state: CertificateState): Record<string, string> {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  return {
    [CA_CERT_KEY]: b64(state.ca?.cert ?? ''),
    [CA_KEY_KEY]: b64(state.ca?.key ?? ''),
    [TLS_CERT_KEY]: b64(state.serving?.cert ?? ''),
    [TLS_KEY_KEY]: b64(state.serving?.key ?? ''),
    [CA_BUNDLE_KEY]: b64(state.bundle.join('')),
  };
}

export interface ServingCertificatesOptions {
  rest: KubeRest;
  namespace: string;
  secretName: string;
  /** The MutatingWebhookConfiguration whose caBundle is kept current; "" leaves it alone. */
  webhookConfiguration: string;
  policy: RotationPolicy;
  log: Logger;
  /** Called with the pair to serve whenever it changes. */
  onServing: (pair: KeyAndCertificate) => void;
  now?: () => Date;
}

interface WebhookConfiguration {
  metadata?: { resourceVersion?: string };
  webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
}

/**
 * One replica's view of the certificate Secret. `sync` reads it, writes what `planCertificates`
 * asks for (only the leader rotates; anyone creates it when it is missing, first writer wins),
 * hands the serving pair to the server, and on the leader patches the caBundle.
 */
export class ServingCertificates {
  private readonly o: ServingCertificatesOptions;
  private timer?: NodeJS.Timeout;
  private served?: string;

  constructor(o: ServingCertificatesOptions) {
    this.o = o;
  }

  private get secretPath(): string {
    return `/api/v1/namespaces/${segment(this.o.namespace)}/secrets/${segment(this.o.secretName)}`;
  }

  /** Runs `sync` now and then every `intervalMs` until `stop`. */
  async start(intervalMs: number, leading: () => boolean): Promise<void> {
    await this.sync(leading());
    const tick = () => {
      this.timer = setTimeout(() => {
        this.sync(leading()).then(tick, (error: unknown) => {
          this.o.log.warn('webhook certificate sync failed', {
            error: error instanceof Error ? error.message : String(error),
          });
          tick();
        });
      }, intervalMs);
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  async sync(leading: boolean): Promise<void> {
    const { rest, log } = this.o;
    const now = this.o.now?.() ?? new Date();
    let secret = await this.readSecret();
    const state = stateFromSecret(secret);
    const next =
      secret === undefined || leading ? planCertificates(state, this.o.policy, now) : undefined;
    if (next) {
      const body: V1Secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: {
          name: this.o.secretName,
          namespace: this.o.namespace,
          labels: { ...secret?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
          annotations: publishedAnnotation(
            secret?.metadata?.annotations,
            // Without a configuration to publish to, the grace counts from the write.
            next.caPublishedAt ?? (this.o.webhookConfiguration ? undefined : now),
          ),
          ...(secret?.metadata?.resourceVersion
            ? { resourceVersion: secret.metadata.resourceVersion }
            : {}),
        },
        data: secretData(next),
      };
      try {
        secret = secret
          ? await rest.send<V1Secret>(
              { method: 'PUT', path: this.secretPath, body },
              'update webhook certificate Secret',
            )
          : await rest.send<V1Secret>(
              {
                method: 'POST',
                path: `/api/v1/namespaces/${segment(this.o.namespace)}/secrets`,
                body,
              },
              'create webhook certificate Secret',
            );
        log.info('webhook certificates written', {
          secret: `${this.o.namespace}/${this.o.secretName}`,
          newCa: next.ca?.cert !== state.ca?.cert,
          newServing: next.serving?.cert !== state.serving?.cert,
        });
      } catch (error) {
        // Another replica wrote first: serve what it wrote.
        if (!(error instanceof KubeApiError && error.conflict)) throw error;
        secret = await this.readSecret();
      }
    }
    const current = stateFromSecret(secret);
    if (current.serving && current.serving.cert !== this.served) {
      this.o.onServing(current.serving);
      this.served = current.serving.cert;
    }
    if (leading && this.o.webhookConfiguration && current.bundle.length > 0) {
      const published = await this.publishBundle(current.bundle.join(''));
      if (published && secret && current.caPublishedAt === undefined) {
        await this.markPublished(secret, now);
      }
    }
  }

  /** Records that the bundle holding the current CA is published: its grace starts now. */
  private async markPublished(secret: V1Secret, now: Date): Promise<void> {
    const body: V1Secret = {
      ...secret,
      metadata: {
        ...secret.metadata,
        annotations: publishedAnnotation(secret.metadata?.annotations, now),
      },
    };
    try {
      await this.o.rest.send<V1Secret>(
        { method: 'PUT', path: this.secretPath, body },
        'record the webhook caBundle as published',
      );
    } catch (error) {
      // Another replica wrote meanwhile: the next sync publishes and records again.
      if (!(error instanceof KubeApiError && error.conflict)) throw error;
    }
  }

  private async readSecret(): Promise<V1Secret | undefined> {
    try {
      return await this.o.rest.send<V1Secret>(
        { method: 'GET', path: this.secretPath },
        'read webhook certificate Secret',
      );
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return undefined;
      throw error;
    }
  }

  /**
   * Sets every webhook's caBundle of the configuration to `bundle` where it differs; true once
   * the configuration holds it (false when it is not installed).
   */
  private async publishBundle(bundle: string): Promise<boolean> {
    const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${segment(this.o.webhookConfiguration)}`;
    let config: WebhookConfiguration;
    try {
      config = await this.o.rest.send<WebhookConfiguration>(
        { method: 'GET', path },
        'read MutatingWebhookConfiguration',
      );
    } catch (error) {
      if (error instanceof KubeApiError && error.notFound) return false; // not installed (yet)
      throw error;
    }
    const caBundle = Buffer.from(bundle).toString('base64');
    const ops: unknown[] = [];
    (config.webhooks ?? []).forEach((webhook, i) => {
      if (webhook.clientConfig?.caBundle === caBundle) return;
      // `test` pins the index to the webhook we read, should the list change in between.
      ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: webhook.name });
      ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle });
    });
    if (ops.length === 0) return (config.webhooks ?? []).length > 0;
    await this.o.rest.send(
      { method: 'PATCH', path, body: ops, contentType: 'application/json-patch+json' },
      'update caBundle of MutatingWebhookConfiguration',
    );
    this.o.log.info('webhook caBundle updated', {
      mutatingWebhookConfiguration: this.o.webhookConfiguration,
      certificates: bundle.match(/BEGIN CERTIFICATE/g)?.length ?? 0,
    });
    return true;
  }
}

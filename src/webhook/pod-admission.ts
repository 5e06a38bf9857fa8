// Wiring of the Pod webhook (every replica): the HTTPS server over the caches, and where its
// certificate comes from (the operator's own CA in a Secret, or files cert-manager keeps).
import type { KubeConfig } from '@kubernetes/client-node';
import type { PodWebhookConfig } from '../config.ts';
import type { ClusterCaches } from '../kube/cluster-view.ts';
import { KubeRest } from '../kube/rest.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { admissionCaches } from './admission-caches.ts';
import { CertificateFiles } from './certificate-files.ts';
import type { ImageMatcher } from './pod-mutation.ts';
import { PodWebhookServer } from './pod-webhook.ts';
import { PullPolicyObservations } from './pull-isolation.ts';
import { ServingCertificates } from './serving-certificates.ts';
import { WebhookMetrics } from './webhook-metrics.ts';

export interface PodAdmissionWiring {
  config: PodWebhookConfig;
  namespace: string;
  kc: KubeConfig;
  caches: ClusterCaches;
  metrics: Metrics;
  log: Logger;
  leading: () => boolean;
  matchesImage?: ImageMatcher;
}

export class PodAdmission {
  readonly server: PodWebhookServer;
  readonly webhookMetrics: WebhookMetrics;
  /** Pull policies seen for private images (the PullIsolation condition). */
  readonly observations = new PullPolicyObservations();
  private readonly o: PodAdmissionWiring;
  private readonly log: Logger;
  private certificates?: ServingCertificates;
  private files?: CertificateFiles;
  port = 0;

  constructor(o: PodAdmissionWiring) {
    this.o = o;
    this.log = o.log.child({ component: 'pod-webhook' });
    this.webhookMetrics = new WebhookMetrics(o.metrics.registry);
    this.server = new PodWebhookServer({
      caches: admissionCaches(o.caches),
      metrics: this.webhookMetrics,
      log: this.log,
      ...(o.matchesImage ? { matchesImage: o.matchesImage } : {}),
      observe: (uses) => this.observations.observe(uses),
    });
  }

  /** Gets a certificate, then listens. Call once the caches have synced. */
  async start(): Promise<void> {
    const { config } = this.o;
    const onServing = (pair: { cert: string; key: string }) => {
      this.server.setCertificate(pair);
      this.log.info('serving webhook certificate', {});
    };
    if (config.certDir) {
      this.files = new CertificateFiles(config.certDir, this.log, onServing);
      await this.files.start(10_000);
    } else {
      this.certificates = new ServingCertificates({
        rest: new KubeRest(this.o.kc),
        namespace: this.o.namespace,
        secretName: config.certSecret,
        webhookConfiguration: config.configurationName,
        policy: {
          hosts: config.hosts,
          caLifetimeMs: config.caLifetimeMs,
          certLifetimeMs: config.certLifetimeMs,
          publishGraceMs: Math.min(60_000, config.certLifetimeMs / 6),
        },
        log: this.log,
        onServing,
      });
      const interval = Math.max(1_000, Math.min(60_000, config.certLifetimeMs / 12));
      await this.certificates.start(interval, this.o.leading);
    }
    this.port = await this.server.listen(config.address);
    this.log.info('Pod webhook listening', { address: config.address, port: this.port });
  }

  /** On becoming leader: rotate if due and publish the caBundle now, not at the next tick. */
  async becameLeader(): Promise<void> {
    try {
      await this.certificates?.sync(true);
    } catch (error) {
      this.log.warn('webhook certificate sync failed', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  async stop(): Promise<void> {
    this.certificates?.stop();
    this.files?.stop();
    await this.server.close();
  }
}

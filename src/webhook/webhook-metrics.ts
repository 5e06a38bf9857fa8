// The Pod webhook's metrics, on the operator's registry: how long admission takes here (the API
// server measures its side in apiserver_admission_webhook_admission_duration_seconds), what it
// changed, and the pull policy Pods arrive with for images a credential covers.
import { Counter, Histogram, type Registry } from 'prom-client';

export class WebhookMetrics {
  readonly requests: Counter<'result'>;
  readonly duration: Histogram<never>;
  readonly secretsAdded: Counter<'registrycredential'>;
  readonly privateImagePulls: Counter<'registrycredential' | 'policy'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'regcred_pod_webhook_requests_total',
      help: 'Pod admission requests answered, by result (patched, unchanged, error)',
      labelNames: ['result'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: 'regcred_pod_webhook_duration_seconds',
      help: 'Time from the request body received to the answer written',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1],
      registers,
    });
    this.secretsAdded = new Counter({
      name: 'regcred_pod_webhook_pull_secrets_added_total',
      help: "Pods created without a credential's Secret in imagePullSecrets that the webhook added it to",
      labelNames: ['registrycredential'] as const,
      registers,
    });
    this.privateImagePulls = new Counter({
      name: 'regcred_pod_private_image_pull_policy_total',
      help: "Containers of admitted Pods whose image a credential's registries cover, by the imagePullPolicy they arrived with (IfNotPresent: neither AlwaysPullImages nor the credential's policy protects the cached image)",
      labelNames: ['registrycredential', 'policy'] as const,
      registers,
    });
  }
}

// An operator serving the Pod webhook, in place of the suite's own (one writer at a time): the
// shipped configuration (failurePolicy Ignore) on a loopback url, limited to namespaces carrying
// this run's label, and a wait until the API server really calls it with a trusted certificate.
import { join } from 'node:path';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { launchOperator, type OperatorProcess } from '../support/operator.ts';
import {
  podWebhookArgs,
  WEBHOOK_CONFIG_DIR,
  webhookConfigurationYaml,
} from '../support/pod-webhook.ts';
import { waitUntil } from '../support/wait.ts';

/** config/webhook's RBAC lets the operator patch only this configuration's caBundle. */
export const WEBHOOK_CONFIGURATION = 'regcred-operator-pod-webhook';

export class WebhookOperator {
  /** Namespaces with this label are sent to the webhook. */
  readonly label = { 'regcred.dev/webhook-test': uniqueName('run') };
  operator?: OperatorProcess;
  private args: string[] = [];

  /** Stops the suite's operator, installs the configuration; call start() next. */
  static async install(extraArgs: string[] = []): Promise<WebhookOperator> {
    const w = new WebhookOperator();
    await cluster.stopOperator();
    await cluster.kubectlOk(['apply', '-f', join(WEBHOOK_CONFIG_DIR, 'rbac.yaml')]);
    const { port, args } = await podWebhookArgs(WEBHOOK_CONFIGURATION, extraArgs);

    w.args = args;
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: webhookConfigurationYaml({
        name: WEBHOOK_CONFIGURATION,
        port,
        matchLabels: w.label,
      }),
    });
    return w;
  }

  /** Starts the operator and waits until a dry-run Pod in `probeNamespace` is patched. */
  async start(probeNamespace: string, probeSecret: string): Promise<OperatorProcess> {
    this.operator = await launchOperator({
      kubeconfigPath: cluster.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
      args: this.args,
      logLevel: 'info',
    });
    await this.operator.waitReady(120_000);
    const f = new Fixtures(cluster.kc);
    // Ignore hides a failed call: wait until the API server's call succeeds (caBundle loaded).
    await waitUntil(
      'the API server to call the webhook with a trusted certificate',
      async () => {
        const pod = await f.core.createNamespacedPod({
          namespace: probeNamespace,
          dryRun: 'All',
          body: {
            metadata: { generateName: 'probe-' },
            spec: { containers: [{ name: 'probe', image: 'registry.invalid/probe:1' }] },
          },
        });
        return (pod.spec?.imagePullSecrets ?? []).some((s) => s.name === probeSecret);
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    return this.operator;
  }

  /** Restarts with other flags (the configuration stays). */
  withArgs(extra: string[]): this {
    this.args = [
      ...this.args.filter((a) => !extra.some((e) => e.split('=')[0] === a.split('=')[0])),
      ...extra,
    ];
    return this;
  }

  async stop(): Promise<void> {
    await this.operator?.stop();
  }

  /** Removes the configuration and gives the suite its operator back. */
  async uninstall(): Promise<void> {
    await this.stop();
    await cluster.kc
      .makeApiClient(AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION })
      .catch(() => undefined);
    await cluster.startOperator();
  }
}

// Root hooks for the integration suite: one control plane per run, the CRD installed and
// Established before any test. Each test makes its own namespaces and objects.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  type ControlPlane,
  type KubectlResult,
  startControlPlane,
} from '../support/controlplane.ts';
import { OperatorProcess } from '../support/operator.ts';

export const CRD_NAME = 'registrycredentials.regcred.dev';

/** Writes to Secrets and ServiceAccounts, at Metadata level, once they completed. */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted, Panic]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: ""
        resources: [secrets, serviceaccounts]
  - level: None
`;
/** The operator's own namespace in the suite, where source Secrets live by default. */
export const OPERATOR_NAMESPACE = 'regcred-system';
/** A second namespace the suite's operator may read source Secrets from. */
export const EXTRA_SOURCE_NAMESPACE = 'regcred-sources';

class TestCluster {
  private plane?: ControlPlane;
  private config?: KubeConfig;
  private op?: OperatorProcess;
  /** A kubeconfig with the operator ServiceAccount's token (config/rbac's permissions). */
  operatorKubeconfigPath = '';
  /** The API server's audit log: Secret and ServiceAccount writes, one JSON event a line. */
  auditLogPath = '';

  attach(plane: ControlPlane): void {
    this.plane = plane;
    const kc = new KubeConfig();
    kc.loadFromFile(plane.kubeconfigPath);
    this.config = kc;
  }

  get attached(): boolean {
    return this.plane !== undefined;
  }

  get controlPlane(): ControlPlane {
    if (!this.plane) throw new Error('the control plane is not running (root hooks did not run)');
    return this.plane;
  }

  get kubeconfigPath(): string {
    return this.controlPlane.kubeconfigPath;
  }

  /** A KubeConfig for the admin identity (system:masters). */
  get kc(): KubeConfig {
    if (!this.config) throw new Error('the control plane is not running (root hooks did not run)');
    return this.config;
  }

  kubectl(
    args: string[],
    options?: { input?: string; timeoutMs?: number },
  ): Promise<KubectlResult> {
    return this.controlPlane.kubectl(args, options);
  }

  /** Runs kubectl and throws with its output unless it exits 0. */
  async kubectlOk(args: string[], options?: { input?: string }): Promise<string> {
    const result = await this.kubectl(args, options);
    if (result.code !== 0) {
      throw new Error(
        `kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`,
      );
    }
    return result.stdout;
  }

  /** The suite's operator (one process; tests may stop and restart it, never run a second). */
  get operator(): OperatorProcess {
    if (!this.op) throw new Error('the operator is not running (root hooks did not run)');
    return this.op;
  }

  /** Starts the suite's operator (again); resolves once its caches have synced. */
  async startOperator(): Promise<OperatorProcess> {
    if (this.op?.running) return this.op;
    this.op = new OperatorProcess({
      kubeconfigPath: this.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
    });
    return this.op.start();
  }

  async stopOperator(): Promise<void> {
    await this.op?.stop();
  }

  detach(): void {
    this.plane = undefined;
    this.config = undefined;
  }
}

export const cluster = new TestCluster();

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    // The first run on a machine builds the binaries: that can take many minutes.
    this.timeout(60 * 60 * 1000);
    // An audit log of every Secret and ServiceAccount write, by user: how a test tells which
    // replica wrote what (one writer at a time).
    const auditDir = mkdtempSync(join(tmpdir(), 'regcred-audit-'));
    const policy = join(auditDir, 'policy.yaml');
    writeFileSync(policy, AUDIT_POLICY);
    cluster.auditLogPath = join(auditDir, 'audit.log');
    const plane = await startControlPlane({
      log: (line) => process.stderr.write(`${line}\n`),
      apiServerFlags: [`--audit-policy-file=${policy}`, `--audit-log-path=${cluster.auditLogPath}`],
    });
    cluster.attach(plane);
    await cluster.kubectlOk([
      'apply',
      '--server-side',
      '-f',
      join(import.meta.dirname, '..', '..', 'crds'),
    ]);
    await cluster.kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      `crd/${CRD_NAME}`,
    ]);
    for (const ns of [OPERATOR_NAMESPACE, EXTRA_SOURCE_NAMESPACE]) {
      await cluster.kubectlOk(['create', 'namespace', ns]);
    }
    // The operator runs as the ServiceAccount config/rbac grants, never as cluster admin, so
    // every test also proves the RBAC is enough.
    await cluster.kubectlOk([
      'apply',
      '-k',
      join(import.meta.dirname, '..', '..', 'config', 'rbac'),
    ]);
    const token = (
      await cluster.kubectlOk([
        'create',
        'token',
        'regcred-operator',
        '-n',
        OPERATOR_NAMESPACE,
        '--duration=24h',
      ])
    ).trim();
    cluster.operatorKubeconfigPath = plane.writeKubeconfigFor(
      join(plane.dir, 'operator.kubeconfig'),
      'regcred-operator',
      token,
    );
    await cluster.startOperator();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    if (!cluster.attached) return;
    await cluster.stopOperator();
    const plane = cluster.controlPlane;
    cluster.detach();
    await plane.stop();
    if (cluster.auditLogPath)
      rmSync(dirname(cluster.auditLogPath), { recursive: true, force: true });
  },
};

// The Helm chart (charts/regcred-operator) as a user meets it, with helm built from the Go module
// proxy by scripts/provision.sh: it lints, its defaults render exactly what
// `kubectl kustomize config/default` renders (config/ stays the one source of truth for RBAC
// and the Deployment), every value shows up where a user expects it, the API server accepts it
// (--dry-run=server), and a real install and uninstall next to the suite's operator leaves the
// CRD and everyone else's objects alone. A second, empty control plane takes the production
// install command as the README gives it: the CRD comes from the chart's crds/.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { type ControlPlane, startControlPlane } from '../support/controlplane.ts';
import { uniqueName } from '../support/names.ts';
import { folderOf, provision } from '../support/provision.ts';
import { waitFor } from '../support/wait.ts';
import { CRD_NAME, cluster } from './hooks.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const chart = join(repoRoot, 'charts', 'regcred-operator');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
interface K8sObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string } & JsonObject;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Labels Helm charts add by convention and config/ does not carry. */
const HELM_LABELS = new Set([
  'helm.sh/chart',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/version',
]);

function run(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(
      binary,
      args,
      { env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

function objects(yamlText: string): K8sObject[] {
  return parseAllDocuments(yamlText)
    .map((doc) => doc.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object' && 'kind' in o);
}

function keyOf(o: K8sObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** A copy without Helm's conventional labels, wherever a label map appears (selectors too). */
function withoutHelmLabels(value: Json): Json {
  if (Array.isArray(value)) return value.map(withoutHelmLabels);
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const [key, inner] of Object.entries(value)) {
    if (HELM_LABELS.has(key)) continue;
    const stripped = withoutHelmLabels(inner);
    // Objects config/ labels with nothing carry Helm's labels alone.
    if (key === 'labels' && Object.keys(stripped as JsonObject).length === 0) continue;
    out[key] = stripped;
  }
  return out;
}

function byKey(list: K8sObject[]): Map<string, K8sObject> {
  return new Map(list.map((o) => [keyOf(o), o]));
}

function find(list: K8sObject[], kind: string, name?: string): K8sObject | undefined {
  return list.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

function must(list: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(list, kind, name);
  assert.ok(found, `no ${kind}${name ? ` ${name}` : ''} among ${list.map(keyOf).join(', ')}`);
  return found;
}

function container(deployment: K8sObject | undefined): JsonObject {
  const spec = (deployment?.spec as JsonObject | undefined)?.template as JsonObject | undefined;
  const pod = spec?.spec as JsonObject | undefined;
  const first = (pod?.containers as JsonObject[] | undefined)?.[0];
  assert.ok(first, `no container in ${JSON.stringify(deployment)}`);
  return first;
}

function podSpec(deployment: K8sObject | undefined): JsonObject {
  const template = (deployment?.spec as JsonObject | undefined)?.template as JsonObject;
  return template.spec as JsonObject;
}

describe('Helm chart charts/regcred-operator', function () {
  // The first run on a machine builds helm (a few minutes).
  this.timeout(30 * 60 * 1000);
  let helmBinary = '';
  let helmHome = '';
  let env: NodeJS.ProcessEnv = {};

  const helm = (args: string[], kubeconfig = cluster.kubeconfigPath): Promise<Run> =>
    run(helmBinary, args, { ...env, KUBECONFIG: kubeconfig });
  const helmOk = async (args: string[], kubeconfig?: string): Promise<string> => {
    const result = await helm(args, kubeconfig);
    assert.equal(result.code, 0, `helm ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout;
  };
  const template = async (extra: string[] = []): Promise<K8sObject[]> =>
    objects(
      await helmOk([
        'template',
        'regcred-operator',
        chart,
        '--namespace',
        'regcred-system',
        ...extra,
      ]),
    );

  before(async () => {
    const provisioned = await provision(['helm']);
    helmBinary = join(folderOf(provisioned, 'helm'), 'helm');
    helmHome = mkdtempSync(join(tmpdir(), 'regcred-helm-'));
    // Helm's own state (repositories, cache, plugins) stays out of the user's home.
    env = {
      PATH: process.env.PATH,
      HOME: helmHome,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    };
  });

  after(() => {
    if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  });

  it('is helm v4.3.2, the version pinned in scripts/controlplane/helm/go.mod', async () => {
    const version = await helmOk(['version', '--short']);
    assert.match(version, /^v4\.3\.2\b/);
  });

  it('passes helm lint --strict, with defaults and with every value set', async () => {
    const defaults = await helm(['lint', '--strict', chart]);
    assert.equal(defaults.code, 0, defaults.stdout + defaults.stderr);
    assert.match(defaults.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    const everything = await helm([
      'lint',
      '--strict',
      chart,
      ...everyValue(),
      '--set',
      'podWebhook.enabled=true',
      '--set',
      'podWebhook.certManager.enabled=true',
      '--set',
      'podWebhook.networkPolicy.enabled=true',
    ]);
    assert.equal(everything.code, 0, everything.stdout + everything.stderr);
  });

  /** config/default with kustomize components, as a user's overlay would add them. */
  async function kustomizeWith(components: string[]): Promise<K8sObject[]> {
    const overlay = mkdtempSync(join(tmpdir(), 'regcred-overlay-'));
    try {
      // kustomize takes only relative paths to bases and components.
      const rel = (dir: string): string => relative(overlay, join(repoRoot, 'config', dir));
      writeFileSync(
        join(overlay, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          `resources: [${rel('default')}]`,
          `components: [${components.map(rel).join(', ')}]`,
          '',
        ].join('\n'),
      );
      const result = await cluster.kubectl(['kustomize', overlay]);
      assert.equal(result.code, 0, result.stderr);
      return objects(result.stdout);
    } finally {
      rmSync(overlay, { recursive: true, force: true });
    }
  }

  for (const variant of [
    { values: 'default values', components: [], set: [] },
    { values: 'podWebhook.enabled', components: ['webhook'], set: ['podWebhook.enabled=true'] },
    {
      values: 'podWebhook.enabled and podWebhook.certManager.enabled',
      components: ['webhook', 'webhook/cert-manager'],
      set: ['podWebhook.enabled=true', 'podWebhook.certManager.enabled=true'],
    },
    {
      values: 'podWebhook.enabled and podWebhook.networkPolicy.enabled',
      components: ['webhook', 'webhook/network-policy'],
      set: ['podWebhook.enabled=true', 'podWebhook.networkPolicy.enabled=true'],
    },
  ]) {
    const what = ['config/default', ...variant.components.map((c) => `config/${c}`)].join(' + ');
    it(`renders with ${variant.values} exactly what kubectl kustomize renders of ${what} (less the Namespace, plus Helm labels)`, async () => {
      const fromConfig = await kustomizeWith(variant.components);
      const fromChart = await template([
        '--include-crds',
        ...variant.set.flatMap((value) => ['--set', value]),
      ]);

      const namespace = fromConfig.filter((o) => o.kind === 'Namespace');
      assert.deepEqual(
        namespace.map((o) => o.metadata.name),
        ['regcred-system'],
        'config/default makes the namespace; the chart installs into the release namespace',
      );
      const expected = byKey(fromConfig.filter((o) => o.kind !== 'Namespace'));
      const actual = byKey(fromChart);
      assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
      for (const [key, object] of expected) {
        assert.deepEqual(
          withoutHelmLabels(actual.get(key) as Json),
          object,
          `${key} differs between the chart and config/`,
        );
      }
      // Helm's labels are the only addition: each chart object carries them.
      for (const o of fromChart.filter((x) => x.kind !== 'CustomResourceDefinition')) {
        const labels = (o.metadata.labels ?? {}) as JsonObject;
        assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm', keyOf(o));
        assert.equal(labels['app.kubernetes.io/instance'], 'regcred-operator', keyOf(o));
      }
    });
  }

  it('renders no PodDisruptionBudget and no ServiceMonitor unless asked', async () => {
    const rendered = await template();
    assert.equal(find(rendered, 'PodDisruptionBudget'), undefined);
    assert.equal(find(rendered, 'ServiceMonitor'), undefined);
  });

  it('puts every value where the operator and the scheduler read it', async () => {
    const rendered = await template(everyValue());
    const deployment = must(rendered, 'Deployment', 'regcred-operator');
    const manager = container(deployment);
    assert.equal(manager.image, 'registry.example.com/regcred-operator:1.2.3');
    assert.equal(manager.imagePullPolicy, 'Always');
    assert.deepEqual(manager.args, [
      '--metrics-address=:8080',
      '--health-address=:8081',
      '--source-namespaces=team-sources,shared-sources',
      '--log-level=debug',
      '--workers=8',
      '--informer-resync=5m',
    ]);
    assert.deepEqual(manager.resources, {
      requests: { cpu: '100m', memory: '256Mi' },
      limits: { memory: '512Mi' },
    });
    const envNames = (manager.env as JsonObject[]).map((e) => e.name);
    assert.ok(envNames.includes('AWS_ENDPOINT_URL_STS'), envNames.join(' '));
    assert.equal((deployment.spec as JsonObject).replicas, 3);
    const pod = podSpec(deployment);
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.deepEqual(pod.tolerations, [
      { key: 'dedicated', operator: 'Equal', value: 'system', effect: 'NoSchedule' },
    ]);
    assert.deepEqual(pod.affinity, {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'pool', operator: 'In', values: ['system'] }] },
          ],
        },
      },
    });
    const sa = must(rendered, 'ServiceAccount', 'regcred-operator');
    assert.deepEqual(sa.metadata.annotations, {
      'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/regcred',
    });

    const pdb = find(rendered, 'PodDisruptionBudget', 'regcred-operator');
    assert.ok(pdb, 'podDisruptionBudget.enabled renders a PodDisruptionBudget');
    assert.equal((pdb.spec as JsonObject).minAvailable, 1);
    assert.deepEqual(((pdb.spec as JsonObject).selector as JsonObject).matchLabels, {
      'app.kubernetes.io/name': 'regcred-operator',
      'app.kubernetes.io/instance': 'regcred-operator',
    });

    const monitor = find(rendered, 'ServiceMonitor', 'regcred-operator');
    assert.ok(monitor, 'serviceMonitor.enabled renders a ServiceMonitor');
    assert.equal((monitor.metadata.labels as JsonObject).release, 'prometheus');
    assert.deepEqual((monitor.spec as JsonObject).endpoints, [
      { port: 'metrics', path: '/metrics', interval: '15s' },
    ]);
    // It selects the metrics Service, whose port it names.
    const service = must(rendered, 'Service', 'regcred-operator-metrics');
    const serviceSpec = service.spec as JsonObject;
    assert.deepEqual(
      ((monitor.spec as JsonObject).selector as JsonObject).matchLabels,
      serviceSpec.selector,
    );
    assert.ok((serviceSpec.ports as JsonObject[]).some((p) => p.name === 'metrics'));
  });

  it('takes maxUnavailable for the PodDisruptionBudget instead of minAvailable when set', async () => {
    const rendered = await template([
      '--set',
      'podDisruptionBudget.enabled=true',
      '--set',
      'podDisruptionBudget.maxUnavailable=1',
    ]);
    const spec = must(rendered, 'PodDisruptionBudget').spec as JsonObject;
    assert.deepEqual(
      { minAvailable: spec.minAvailable, maxUnavailable: spec.maxUnavailable },
      { minAvailable: undefined, maxUnavailable: 1 },
    );
  });

  it('names a second release’s cluster-wide objects after it, so two never collide', async () => {
    const rendered = objects(
      await helmOk([
        'template',
        'staging',
        chart,
        '--namespace',
        'regcred-staging',
        '--set',
        'podWebhook.enabled=true',
      ]),
    );
    const clusterScoped = rendered
      .filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')
      .map(keyOf)
      .sort();
    assert.deepEqual(clusterScoped, [
      'ClusterRole staging-regcred-operator',
      'ClusterRole staging-regcred-operator-edit',
      'ClusterRole staging-regcred-operator-view',
      'ClusterRole staging-regcred-operator-webhook',
      'ClusterRoleBinding staging-regcred-operator',
      'ClusterRoleBinding staging-regcred-operator-webhook',
    ]);
    // The operator is told the webhook's names, which are not its defaults here.
    const webhook = must(rendered, 'MutatingWebhookConfiguration');
    assert.equal(webhook.metadata.name, 'staging-regcred-operator-pod-webhook');
    const service = must(rendered, 'Service', 'staging-regcred-operator-webhook');
    const hook = (webhook.webhooks as JsonObject[])[0] as JsonObject;
    assert.deepEqual((hook.clientConfig as JsonObject).service, {
      name: service.metadata.name,
      namespace: 'regcred-staging',
      path: '/mutate-pods',
      port: 443,
    });
    const args = container(must(rendered, 'Deployment')).args as string[];
    assert.deepEqual(
      args.filter((a) => a.startsWith('--pod-webhook')),
      [
        '--pod-webhook-address=:9443',
        '--pod-webhook-service=staging-regcred-operator-webhook',
        '--pod-webhook-cert-secret=staging-regcred-operator-webhook-tls',
        '--pod-webhook-configuration=staging-regcred-operator-pod-webhook',
      ],
    );
    const webhookRole = must(rendered, 'ClusterRole', 'staging-regcred-operator-webhook');
    assert.deepEqual((webhookRole.rules as JsonObject[])[0]?.resourceNames, [
      'staging-regcred-operator-pod-webhook',
    ]);
    // Its own namespace's Pods never wait on it.
    const selector = (hook.namespaceSelector as JsonObject).matchExpressions as JsonObject[];
    assert.ok(((selector[0] as JsonObject).values as string[]).includes('regcred-staging'));
    const binding = must(rendered, 'ClusterRoleBinding');
    assert.deepEqual((binding.subjects as JsonObject[])[0], {
      kind: 'ServiceAccount',
      name: 'staging-regcred-operator',
      namespace: 'regcred-staging',
    });
  });

  it('is checked by the API server with --dry-run=server, creating nothing', async () => {
    const release = uniqueName('dry');
    const namespace = uniqueName('helm-dry');
    await cluster.kubectlOk(['create', 'namespace', namespace]);
    try {
      const ok = await helm([
        'install',
        release,
        chart,
        '--namespace',
        namespace,
        '--dry-run=server',
        '--set',
        'podDisruptionBudget.enabled=true',
        '--set',
        'podWebhook.enabled=true',
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /STATUS: pending-install/);
      assert.match(ok.stdout, /kind: PodDisruptionBudget/);
      assert.match(ok.stdout, /kind: MutatingWebhookConfiguration/);
      const clusterRole = await cluster.kubectl([
        'get',
        'clusterrole',
        `${release}-regcred-operator`,
      ]);
      assert.notEqual(clusterRole.code, 0, 'a dry run creates nothing');
      // No release record either (helm keeps them as Secrets labelled owner=helm).
      const records = await cluster.kubectlOk([
        'get',
        'secrets',
        '-n',
        namespace,
        '-l',
        'owner=helm',
        '-o',
        'name',
      ]);
      assert.equal(records.trim(), '');

      // Only the cluster knows this is wrong (no prometheus-operator here, so no ServiceMonitor
      // kind): helm template renders it happily, the server-side dry run refuses it.
      const monitor = 'serviceMonitor.enabled=true';
      const rendered = await helm(['template', release, chart, '--set', monitor]);
      assert.equal(rendered.code, 0, rendered.stderr);
      const refused = await helm([
        'install',
        release,
        chart,
        '--namespace',
        namespace,
        '--dry-run=server',
        '--set',
        monitor,
      ]);
      assert.notEqual(refused.code, 0, `--set ${monitor} passed --dry-run=server`);
      assert.match(refused.stderr, /no matches for kind "ServiceMonitor"/);
    } finally {
      await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
    }
  });

  it('installs RBAC and the Deployment for real beside the suite’s operator, and uninstalls without touching the CRD', async () => {
    const release = uniqueName('it');
    const namespace = uniqueName('helm-real');
    const full = `${release}-regcred-operator`;
    const sa = `system:serviceaccount:${namespace}:${full}`;
    try {
      const installed = await helm([
        'install',
        release,
        chart,
        '--namespace',
        namespace,
        '--create-namespace',
        '--set',
        'podDisruptionBudget.enabled=true',
        '--set',
        'sourceNamespaces={regcred-sources}',
        '--wait=false',
      ]);
      assert.equal(installed.code, 0, installed.stderr);
      assert.match(installed.stdout, /STATUS: deployed/);
      // The suite's CRD was there first: helm leaves it as it is.
      assert.doesNotMatch(installed.stderr, /error/i);

      const status = JSON.parse(
        await helmOk(['status', release, '--namespace', namespace, '--output', 'json']),
      ) as { info: { status: string } };
      assert.equal(status.info.status, 'deployed');

      // The ClusterRole carries config/rbac's rules, and the ServiceAccount holds exactly them.
      const role = JSON.parse(
        await cluster.kubectlOk(['get', 'clusterrole', full, '-o', 'json']),
      ) as { rules: Json };
      const configRole = objects(
        readFileSync(join(repoRoot, 'config', 'rbac', 'cluster_role.yaml'), 'utf8'),
      )[0];
      assert.deepEqual(role.rules, configRole?.rules);
      const can = async (args: string[]): Promise<string> =>
        (await cluster.kubectl(['auth', 'can-i', ...args, `--as=${sa}`])).stdout.trim();
      assert.equal(await can(['watch', 'secrets', '--all-namespaces']), 'yes');
      assert.equal(await can(['update', 'serviceaccounts', '-n', 'default']), 'yes');
      assert.equal(
        await can(['patch', 'registrycredentials.regcred.dev', '--subresource=status']),
        'yes',
      );
      assert.equal(await can(['create', 'leases.coordination.k8s.io', '-n', namespace]), 'yes');
      assert.equal(await can(['create', 'leases.coordination.k8s.io', '-n', 'default']), 'no');
      assert.equal(await can(['delete', 'namespaces']), 'no');
      assert.equal(await can(['create', 'registrycredentials.regcred.dev']), 'no');

      const deployment = JSON.parse(
        await cluster.kubectlOk(['get', 'deployment', full, '-n', namespace, '-o', 'json']),
      ) as K8sObject;
      assert.ok(
        (container(deployment).args as string[]).includes('--source-namespaces=regcred-sources'),
      );
      assert.equal(podSpec(deployment).serviceAccountName, full);
      await cluster.kubectlOk(['get', 'poddisruptionbudget', full, '-n', namespace]);
      await cluster.kubectlOk(['get', 'clusterrole', `${full}-view`, `${full}-edit`]);

      const uninstalled = await helm(['uninstall', release, '--namespace', namespace, '--wait']);
      assert.equal(uninstalled.code, 0, uninstalled.stderr);
      for (const kind of ['clusterrole', 'clusterrolebinding']) {
        const left = await cluster.kubectl(['get', kind, full]);
        assert.notEqual(left.code, 0, `${kind} ${full} is left after helm uninstall`);
      }
      // The CRD (and so every RegistryCredential) survives: Helm never deletes crds/.
      await cluster.kubectlOk(['get', 'crd', CRD_NAME]);
      // The suite's own RBAC from config/rbac is untouched.
      await cluster.kubectlOk(['get', 'clusterrole', 'regcred-operator', 'regcred-view']);
    } finally {
      await helm(['uninstall', release, '--namespace', namespace]);
      await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']);
    }
  });

  describe('on an empty cluster, as the README installs it', () => {
    let plane: ControlPlane | undefined;

    before(async () => {
      // Only etcd and the API server: no operator, no CRD yet.
      plane = await startControlPlane({ controllerManager: false, log: () => {} });
    });

    after(async () => {
      await plane?.stop();
    });

    it('installs the CRD from crds/ and the Pod webhook with the release, and a sample RegistryCredential applies', async () => {
      const p = plane as ControlPlane;
      const installed = await helm(
        [
          'install',
          'regcred-operator',
          chart,
          '--namespace',
          'regcred-system',
          '--create-namespace',
          '--set',
          'podWebhook.enabled=true',
          '--wait=false',
        ],
        p.kubeconfigPath,
      );
      assert.equal(installed.code, 0, installed.stderr);
      await waitFor(
        'the CRD to be Established',
        () =>
          p.kubectl([
            'get',
            'crd',
            CRD_NAME,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
          ]),
        (r) => r.code === 0 && r.stdout.trim() === 'True',
      );
      // Names as config/ has them, so the README's kubectl commands apply unchanged.
      const names = await p.kubectl([
        'get',
        'clusterrole,clusterrolebinding,serviceaccount,role,rolebinding,deployment,service,mutatingwebhookconfiguration',
        '--all-namespaces',
        '-l',
        'app.kubernetes.io/instance=regcred-operator',
        '-o',
        'name',
      ]);
      assert.deepEqual(names.stdout.trim().split('\n').sort(), [
        'clusterrole.rbac.authorization.k8s.io/regcred-edit',
        'clusterrole.rbac.authorization.k8s.io/regcred-operator',
        'clusterrole.rbac.authorization.k8s.io/regcred-operator-webhook',
        'clusterrole.rbac.authorization.k8s.io/regcred-view',
        'clusterrolebinding.rbac.authorization.k8s.io/regcred-operator',
        'clusterrolebinding.rbac.authorization.k8s.io/regcred-operator-webhook',
        'deployment.apps/regcred-operator',
        'mutatingwebhookconfiguration.admissionregistration.k8s.io/regcred-operator-pod-webhook',
        'role.rbac.authorization.k8s.io/regcred-operator',
        'rolebinding.rbac.authorization.k8s.io/regcred-operator',
        'service/regcred-operator-metrics',
        'service/regcred-operator-webhook',
        'serviceaccount/regcred-operator',
      ]);
      const sample = await p.kubectl([
        'apply',
        '--dry-run=server',
        '-f',
        join(repoRoot, 'config', 'samples', 'regcred_v1alpha1_registrycredential_basic.yaml'),
      ]);
      assert.equal(sample.code, 0, sample.stderr);
      assert.match(
        sample.stdout,
        /registrycredential\.regcred\.dev\/\S+ created \(server dry run\)/,
      );
    });
  });
});

/** Every value the chart documents, set to something other than its default. */
function everyValue(): string[] {
  const set = (pairs: Record<string, string>): string[] =>
    Object.entries(pairs).flatMap(([key, value]) => ['--set', `${key}=${value}`]);
  return [
    ...set({
      'image.repository': 'registry.example.com/regcred-operator',
      'image.tag': '1.2.3',
      'image.pullPolicy': 'Always',
      replicaCount: '3',
      'resources.requests.cpu': '100m',
      'resources.requests.memory': '256Mi',
      'resources.limits.memory': '512Mi',
      sourceNamespaces: '{team-sources,shared-sources}',
      logLevel: 'debug',
      extraArgs: '{--workers=8,--informer-resync=5m}',
      'extraEnv[0].name': 'AWS_ENDPOINT_URL_STS',
      'extraEnv[0].value': 'https://sts.example.com',
      'nodeSelector.kubernetes\\.io/os': 'linux',
      'tolerations[0].key': 'dedicated',
      'tolerations[0].operator': 'Equal',
      'tolerations[0].value': 'system',
      'tolerations[0].effect': 'NoSchedule',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key':
        'pool',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator':
        'In',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]':
        'system',
      'serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn':
        'arn:aws:iam::123456789012:role/regcred',
      'podDisruptionBudget.enabled': 'true',
      'serviceMonitor.enabled': 'true',
      'serviceMonitor.interval': '15s',
      'serviceMonitor.labels.release': 'prometheus',
    }),
  ];
}

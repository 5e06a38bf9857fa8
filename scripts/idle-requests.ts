// The API requests of an idle operator (issue #15, ADR 0001): a control plane with an audit log,
// N namespaces selected by one basic RegistryCredential, the operator as deployed (leader
// election on, its ServiceAccount's RBAC); once it has synced every namespace and written
// nothing for 20 s, every request it sends during the window is counted from the audit log
// (stage RequestReceived, user = its ServiceAccount) and printed as JSON, by verb and resource.
//
//   node scripts/idle-requests.ts [N=300] [window minutes=12]
//
// A window of 11 minutes or more holds one round of anything that runs every 10 minutes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../test/support/controlplane.ts';
import {
  metricSum,
  type OperatorProcess,
  parseMetrics,
  startOperator,
} from '../test/support/operator.ts';

const root = join(import.meta.dirname, '..');
const namespaces = Number(process.argv[2] ?? 300);
const windowMs = Number(process.argv[3] ?? 12) * 60_000;
const OPERATOR_USER = 'system:serviceaccount:regcred-system:regcred-operator';
const say = (line: string) => process.stderr.write(`[idle-requests] ${line}\n`);

interface AuditEvent {
  stage?: string;
  verb?: string;
  requestURI?: string;
  user?: { username?: string };
  objectRef?: { resource?: string; namespace?: string };
  responseStatus?: { code?: number };
}

const auditDir = mkdtempSync(join(tmpdir(), 'regcred-idle-requests-'));
const policy = join(auditDir, 'audit-policy.yaml');
const auditLog = join(auditDir, 'audit.log');
writeFileSync(
  policy,
  'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: ["ResponseStarted"]\nrules:\n- level: Metadata\n',
);
const plane = await startControlPlane({
  log: say,
  apiServerFlags: [
    `--audit-policy-file=${policy}`,
    `--audit-log-path=${auditLog}`,
    '--audit-log-format=json',
    '--audit-log-maxsize=0',
  ],
});
let operator: OperatorProcess | undefined;
try {
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const result = await plane.kubectl(args, { input, timeoutMs: 300_000 });
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  await kubectl(['apply', '--server-side', '-f', join(root, 'crds')]);
  await kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/registrycredentials.regcred.dev',
  ]);
  await kubectl(['create', 'namespace', 'regcred-system']);
  await kubectl(['apply', '-k', join(root, 'config', 'rbac')]);
  const token = (
    await kubectl(['create', 'token', 'regcred-operator', '-n', 'regcred-system', '--duration=24h'])
  ).trim();
  const kubeconfigPath = plane.writeKubeconfigFor(
    join(plane.dir, 'operator.kubeconfig'),
    'regcred-operator',
    token,
  );
  const objects: unknown[] = [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'basic',
        namespace: 'regcred-system',
        labels: { 'regcred.dev/source': 'true' },
      },
      type: 'Opaque',
      stringData: { username: 'idle', password: 'not-a-real-password' },
    },
    {
      apiVersion: 'regcred.dev/v1alpha1',
      kind: 'RegistryCredential',
      metadata: { name: 'idle' },
      spec: {
        namespaceSelector: { matchLabels: { tenant: 'idle' } },
        registries: [
          {
            server: 'registry.example.com',
            basic: { secretRef: { name: 'basic', namespace: 'regcred-system' } },
          },
        ],
      },
    },
  ];
  for (let i = 0; i < namespaces; i++) {
    objects.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: `idle-${i}`, labels: { tenant: 'idle' } },
    });
  }
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
  );
  const running = await startOperator({
    kubeconfigPath,
    namespace: 'regcred-system',
    leaderElect: true,
    identity: 'idle-requests',
    logLevel: 'info',
  });
  operator = running;
  for (;;) {
    const synced = await kubectl([
      'get',
      'regcred',
      'idle',
      '-o',
      'jsonpath={.status.syncedNamespaces}',
    ]);
    if (Number(synced) === namespaces) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const writes = async () => (await running.metric('regcred_api_writes_total')) ?? 0;
  let lastWrites = await writes();
  let quietSince = Date.now();
  while (Date.now() - quietSince < 20_000) {
    await new Promise((r) => setTimeout(r, 2000));
    const now = await writes();
    if (now !== lastWrites) {
      lastWrites = now;
      quietSince = Date.now();
    }
  }
  say(`settled at N = ${namespaces}; counting for ${windowMs / 60_000} min`);
  const skipLines = readFileSync(auditLog, 'utf8').split('\n').length - 1;
  const cpuBefore =
    metricSum(parseMetrics(await running.metrics()), 'process_cpu_seconds_total') ?? 0;
  await new Promise((r) => setTimeout(r, windowMs));
  const cpuAfter =
    metricSum(parseMetrics(await running.metrics()), 'process_cpu_seconds_total') ?? 0;

  const byRequest: Record<string, number> = {};
  const codes: Record<string, number> = {};
  let total = 0;
  for (const line of readFileSync(auditLog, 'utf8').split('\n').slice(skipLines)) {
    if (line === '') continue;
    const event = JSON.parse(line) as AuditEvent;
    if (event.user?.username !== OPERATOR_USER) continue;
    if (event.stage === 'RequestReceived') {
      total++;
      const what = event.objectRef?.resource ?? event.requestURI?.split('?')[0] ?? '?';
      const key = `${event.verb} ${what}`;
      byRequest[key] = (byRequest[key] ?? 0) + 1;
    } else if (event.stage === 'ResponseComplete') {
      const code = String(event.responseStatus?.code ?? '?');
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }
  process.stdout.write(
    `${JSON.stringify(
      {
        namespaces,
        windowMinutes: windowMs / 60_000,
        requests: total,
        requestsPer30MinLinear: Math.round((total * 30 * 60_000) / windowMs),
        byRequest,
        codes,
        operatorCpuSeconds: Math.round((cpuAfter - cpuBefore) * 100) / 100,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await operator?.stop();
  await plane.stop();
  rmSync(auditDir, { recursive: true, force: true });
}

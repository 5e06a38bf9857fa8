#!/usr/bin/env node
// kubectl-regcred: the kubectl plugin (`kubectl regcred explain …`, or `npx kubectl-regcred …`).
// Reads with the caller's kubeconfig (KUBECONFIG, --kubeconfig, --context) and only what the
// caller may read; the answer itself is src/explain/explain.ts's.
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, type RegistryCredential, VERSION } from '../api/types.ts';
import { namespaceInfo } from '../controller/selection.ts';
import { type ExplainArgs, parseCommand } from '../explain/args.ts';
import { type ExplainSecret, explain, type Read } from '../explain/explain.ts';
import { renderExplanation } from '../explain/render.ts';

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv);
  if (parsed.command === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  if (parsed.command === 'error') {
    process.stderr.write(`error: ${parsed.message}\n`);
    return 2;
  }
  return runExplain(parsed.args);
}

async function runExplain(args: ExplainArgs): Promise<number> {
  const kc = new KubeConfig();
  try {
    if (args.kubeconfig) kc.loadFromFile(args.kubeconfig);
    else kc.loadFromDefault();
    if (args.context) kc.setCurrentContext(args.context);
  } catch (error) {
    process.stderr.write(`error: cannot load the kubeconfig: ${(error as Error).message}\n`);
    return 1;
  }
  if (!kc.getCurrentCluster()) {
    process.stderr.write(
      'error: the kubeconfig has no current cluster (set KUBECONFIG, --kubeconfig or --context)\n',
    );
    return 1;
  }
  const namespace =
    args.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);

  const pod = args.pod
    ? await read(async () => {
        const p = await core.readNamespacedPod({ name: args.pod ?? '', namespace });
        return {
          serviceAccountName: p.spec?.serviceAccountName ?? 'default',
          pullSecrets: (p.spec?.imagePullSecrets ?? [])
            .map((r) => r.name ?? '')
            .filter((n) => n !== ''),
        };
      })
    : undefined;
  if (pod && !pod.ok && pod.status === 'NotFound') {
    process.stderr.write(`error: Pod ${namespace}/${args.pod} not found\n`);
    return 1;
  }
  if (pod && !pod.ok && pod.status === 'Failed') {
    process.stderr.write(`error: cannot read Pod ${namespace}/${args.pod}: ${pod.message}\n`);
    return 1;
  }
  const saName = args.serviceAccount ?? (pod?.ok ? pod.value.serviceAccountName : 'default');
  const serviceAccount = await read(async () => {
    const sa = await core.readNamespacedServiceAccount({ name: saName, namespace });
    return {
      name: saName,
      pullSecrets: (sa.imagePullSecrets ?? []).map((r) => r.name ?? '').filter((n) => n !== ''),
    };
  });
  if (!serviceAccount.ok && serviceAccount.status === 'Failed') {
    process.stderr.write(
      `error: cannot read ServiceAccount ${namespace}/${saName}: ${serviceAccount.message}\n`,
    );
    return 1;
  }
  const names = new Set([
    ...(pod?.ok ? pod.value.pullSecrets : []),
    ...(serviceAccount.ok ? serviceAccount.value.pullSecrets : []),
  ]);
  const secrets = new Map<string, Read<ExplainSecret>>();
  for (const name of names) {
    secrets.set(
      name,
      await read(async () => toExplainSecret(await core.readNamespacedSecret({ name, namespace }))),
    );
  }
  const ns = await read(async () => namespaceInfo(await core.readNamespace({ name: namespace })));
  const credentials = await read(async () => {
    const list = (await custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as {
      items?: RegistryCredential[];
    };
    return list.items ?? [];
  });
  const now = new Date();
  const explanation = explain({
    image: args.image,
    namespace,
    subject:
      args.pod && pod
        ? { kind: 'Pod', name: args.pod, pod }
        : { kind: 'ServiceAccount', name: saName },
    serviceAccount,
    secrets,
    namespaceInfo: ns,
    credentials,
    now,
  });
  process.stdout.write(
    args.output === 'json'
      ? `${JSON.stringify(explanation, null, 2)}\n`
      : renderExplanation(explanation, now),
  );
  return 0;
}

/** Only what the explanation needs: never a value beyond the dockerconfig it must match. */
function toExplainSecret(secret: V1Secret): ExplainSecret {
  return {
    name: secret.metadata?.name ?? '',
    ...(secret.type !== undefined ? { type: secret.type } : {}),
    ...(secret.data !== undefined ? { data: secret.data } : {}),
    ...(secret.metadata?.labels !== undefined ? { labels: secret.metadata.labels } : {}),
  };
}

async function read<T>(fetch: () => Promise<T>): Promise<Read<T>> {
  try {
    return { ok: true, value: await fetch() };
  } catch (error) {
    const code = error instanceof ApiException ? error.code : undefined;
    if (code === 404) return { ok: false, status: 'NotFound', message: 'not found' };
    if (code === 403 || code === 401) {
      return {
        ok: false,
        status: 'Forbidden',
        message: code === 403 ? 'forbidden (403)' : 'unauthorized (401)',
      };
    }
    const message =
      code !== undefined ? `the API server answered ${code}` : (error as Error).message;
    return { ok: false, status: 'Failed', message };
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);

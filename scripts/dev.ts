// `npm run dev`: a local control plane, the CRD, the samples, and the operator running against
// them from source. Prints how to look around; Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort, startControlPlane } from '../test/support/controlplane.ts';

const root = join(import.meta.dirname, '..');
const say = (line: string) => process.stdout.write(`${line}\n`);

const plane = await startControlPlane({ log: (line) => process.stderr.write(`${line}\n`) });
const kubectl = async (...args: string[]) => {
  const result = await plane.kubectl(args);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
};

try {
  await kubectl('apply', '--server-side', '-f', join(root, 'crds'));
  await kubectl(
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/registrycredentials.regcred.dev',
  );
  await kubectl('apply', '-k', join(root, 'config', 'samples'));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  await plane.stop();
  process.exit(1);
}

const metricsPort = await freePort();
const healthPort = await freePort();
const operator = spawn(
  process.execPath,
  [
    join(root, 'src', 'main.ts'),
    `--kubeconfig=${plane.kubeconfigPath}`,
    '--namespace=regcred-system',
    '--leader-elect=false',
    `--metrics-address=127.0.0.1:${metricsPort}`,
    `--health-address=127.0.0.1:${healthPort}`,
    `--log-level=${process.env.REGCRED_LOG_LEVEL ?? 'info'}`,
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);

const k = `${join(plane.binDir, 'kubectl')} --kubeconfig=${plane.kubeconfigPath}`;
say('');
say('regcred-operator is running against a local control plane. Look around:');
say(`  export KUBECONFIG=${plane.kubeconfigPath}`);
say(`  alias kubectl=${join(plane.binDir, 'kubectl')}`);
say(`  ${k} get regcred`);
say(`  ${k} describe regcred sample-basic`);
say(`  ${k} get secrets -A -l app.kubernetes.io/managed-by=regcred-operator`);
say(`  ${k} get sa default -n tenant-a -o yaml`);
say(`  ${k} create namespace tenant-c && ${k} label namespace tenant-c tenant=acme`);
say(`  curl -s http://127.0.0.1:${metricsPort}/metrics | grep regcred_`);
say(`  curl -s http://127.0.0.1:${healthPort}/readyz`);
say('Ctrl-C stops the operator and the control plane.');
say('');

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  if (operator.exitCode === null) {
    operator.kill('SIGTERM');
    await new Promise((r) => operator.once('exit', r));
  }
  await plane.stop();
  process.exit(code);
};
process.removeAllListeners('SIGINT');
process.removeAllListeners('SIGTERM');
process.on('SIGINT', () => void stop(130));
process.on('SIGTERM', () => void stop(143));
operator.on('exit', (code) => {
  if (!stopping) {
    process.stderr.write(`the operator exited with code ${code}\n`);
    void stop(code ?? 1);
  }
});

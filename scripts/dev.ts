// `npm run dev`: a local control plane, the CRD, the samples, and the operator running against
// them from source. Prints how to look around; Ctrl-C stops everything.
//
// It always exits: Ctrl-C stops the operator, then the control plane (a second Ctrl-C kills
// both at once), and an operator that dies on its own (a crash, or a kill by a signal) is
// reported and takes the control plane down with it, with a non-zero exit code.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { type ControlPlane, freePort, startControlPlane } from '../test/support/controlplane.ts';

const root = join(import.meta.dirname, '..');
const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`${line}\n`);

/** How long the operator gets to shut down gracefully before it is killed. */
const OPERATOR_GRACE_MS = 35_000;

let plane: ControlPlane | undefined;
let operator: ChildProcess | undefined;
/** Settles when the operator process has exited, however it ended. */
let operatorExited: Promise<void> = Promise.resolve();
let stopping = false;

/** How a process ended, for the crash report. */
function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

async function stop(code: number): Promise<never> {
  if (stopping) {
    // Ctrl-C again while stopping: kill everything now. process.exit runs the control plane's
    // exit hook, which kills its components.
    operator?.kill('SIGKILL');
    process.exit(code);
  }
  stopping = true;
  // exitCode stays null after a kill by a signal: ask both.
  if (operator && operator.exitCode === null && operator.signalCode === null) {
    operator.kill('SIGTERM');
    const forced = setTimeout(() => operator?.kill('SIGKILL'), OPERATOR_GRACE_MS);
    await operatorExited;
    clearTimeout(forced);
  }
  await plane?.stop();
  process.exit(code);
}

/**
 * Makes stop() the only signal handler. Installed before anything starts, so Ctrl-C works from
 * the first moment (a plane still starting is killed by its exit hook when process.exit runs),
 * and again once the plane is up: its harness adds handlers of its own that would stop the
 * plane and exit while the operator is still shutting down.
 */
function handleSignals(): void {
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  process.on('SIGINT', () => void stop(130));
  process.on('SIGTERM', () => void stop(143));
}
handleSignals();

/** Starts everything; returns early when a signal arrived meanwhile (stop() then exits). */
async function main(): Promise<void> {
  try {
    plane = await startControlPlane({ log: complain });
    handleSignals();
    const cluster = plane;
    const kubectl = async (...args: string[]) => {
      const result = await cluster.kubectl(args);
      if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
    await kubectl('apply', '--server-side', '-f', join(root, 'crds'));
    await kubectl(
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/registrycredentials.regcred.dev',
    );
    await kubectl('apply', '-k', join(root, 'config', 'samples'));
  } catch (error) {
    // A Ctrl-C meanwhile stops the plane under kubectl's feet: that is no failure to report.
    if (stopping) return;
    complain(error instanceof Error ? error.message : String(error));
    await stop(1);
  }
  if (stopping || !plane) return;
  const cluster = plane;

  const metricsPort = await freePort();
  const healthPort = await freePort();
  if (stopping) return;
  const child = spawn(
    process.execPath,
    [
      join(root, 'src', 'main.ts'),
      `--kubeconfig=${cluster.kubeconfigPath}`,
      '--namespace=regcred-system',
      '--leader-elect=false',
      `--metrics-address=127.0.0.1:${metricsPort}`,
      `--health-address=127.0.0.1:${healthPort}`,
      `--log-level=${process.env.REGCRED_LOG_LEVEL ?? 'info'}`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  operator = child;
  operatorExited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      resolve();
      if (stopping) return;
      complain(`the operator ${describeExit(code, signal)}; stopping the control plane`);
      void stop(code === null || code === 0 ? 1 : code);
    });
  });

  const k = `${join(cluster.binDir, 'kubectl')} --kubeconfig=${cluster.kubeconfigPath}`;
  say('');
  say('regcred-operator is running against a local control plane. Look around:');
  say(`  export KUBECONFIG=${cluster.kubeconfigPath}`);
  say(`  alias kubectl=${join(cluster.binDir, 'kubectl')}`);
  say(`  ${k} get regcred`);
  say(`  ${k} describe regcred sample-basic`);
  say(`  ${k} get secrets -A -l app.kubernetes.io/managed-by=regcred-operator`);
  say(`  ${k} get sa default -n tenant-a -o yaml`);
  say(`  ${k} create namespace tenant-c && ${k} label namespace tenant-c tenant=acme`);
  say(`  curl -s http://127.0.0.1:${metricsPort}/metrics | grep regcred_`);
  say(`  curl -s http://127.0.0.1:${healthPort}/readyz`);
  say('Ctrl-C stops the operator and the control plane.');
  say('');
}

await main();

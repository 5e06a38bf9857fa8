// `npm run dev`: a local control plane, the CRD, the samples, and the operator running against
// them from source, with every cloud faked locally so that all five samples work offline: the
// ECR/STS, Google (token endpoint and metadata server) and Entra ID/ACR fakes from
// test/support/fakes run in this process, the operator reaches them through the same endpoint
// overrides production users have (AWS_ENDPOINT_URL_ECR, …), and their tokens live for minutes
// (REGCRED_DEV_TOKEN_LIFETIME, seconds, default 180: ECR that long, Google 4/3 and ACR 5/3 of
// it), so NEXT REFRESH ticks and a rotation fans out while you watch. The samples in
// config/samples are applied as they are (real endpoints: the RegistryCredentials name none);
// only the three cloud source Secrets are replaced by dev ones made here for the fakes, fresh
// each run and marked with the annotation dev.regcred.dev/note. Prints how to look around;
// Ctrl-C stops everything.
//
// It always exits: Ctrl-C stops the operator, then the control plane (a second Ctrl-C kills
// both at once), and an operator that dies on its own (a crash, or a kill by a signal) is
// reported and takes the control plane down with it, with a non-zero exit code.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ControlPlane, freePort, startControlPlane } from '../test/support/controlplane.ts';
import { AwsKeyring, FakeEcr, FakeSts } from '../test/support/fakes/aws.ts';
import { FakeAcr, FakeEntraId, IssuedAadTokens } from '../test/support/fakes/azure.ts';
import {
  AWS_CLEAN_ENV,
  AZURE_CLEAN_ENV,
  type EnvVars,
  GOOGLE_CLEAN_ENV,
} from '../test/support/fakes/env.ts';
import {
  FakeGceMetadata,
  FakeGoogleOAuth,
  makeServiceAccountKey,
} from '../test/support/fakes/google.ts';
import { testCertificates } from '../test/support/fakes/test-ca.ts';

const root = join(import.meta.dirname, '..');
const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`${line}\n`);

/** How long the operator gets to shut down gracefully before it is killed. */
const OPERATOR_GRACE_MS = 35_000;
const startedAt = Date.now();

/** What the cloud samples in config/samples name; the fakes are set up to accept exactly that. */
const SAMPLES = {
  names: ['sample-basic', 'sample-dockerconfig', 'sample-ecr', 'sample-gcp', 'sample-acr'],
  namespace: 'regcred-system',
  ecrRole: 'arn:aws:iam::123456789012:role/image-puller',
  gcpEmail: 'image-puller@example-project.iam.gserviceaccount.com',
  acrHost: 'myregistry.azurecr.io',
  acrClientId: '00000000-0000-0000-0000-000000000000',
};

/** ECR tokens live this long; Google's 4/3 and ACR's 5/3 of it, so refreshes are staggered. */
function tokenLifetimeSeconds(): number {
  const raw = process.env.REGCRED_DEV_TOKEN_LIFETIME;
  if (raw === undefined || raw === '') return 180;
  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 15) {
    throw new Error(`REGCRED_DEV_TOKEN_LIFETIME must be a whole number of seconds >= 15: ${raw}`);
  }
  return seconds;
}

type Fake = { close(): Promise<void> };

interface CloudFakes {
  /** Environment for the operator: the overrides pointing its SDKs at the fakes. */
  env: EnvVars;
  /** Lines saying where each fake listens and how long its tokens live. */
  describe: string[];
  /** The dev source Secrets (JSON manifests) the fakes accept, replacing the samples' own. */
  secrets: string;
  fakes: Fake[];
}

/** A Secret manifest for `kubectl apply`, labelled as a source and marked as dev-only. */
function devSecret(name: string, note: string, data: Record<string, string>): object {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: SAMPLES.namespace,
      labels: { 'regcred.dev/source': 'true' },
      annotations: {
        'dev.regcred.dev/note': `DEV ONLY, made by npm run dev for its local ${note}; not a real credential`,
      },
    },
    type: 'Opaque',
    data: Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    ),
  };
}

/** Starts the local clouds and makes the source Secrets they accept. */
async function startCloudFakes(dir: string): Promise<CloudFakes> {
  const lifetime = tokenLifetimeSeconds();
  const fakes: Fake[] = [];
  const started = <T extends Fake>(fake: T): T => {
    fakes.push(fake);
    return fake;
  };
  try {
    const keyring = new AwsKeyring();
    const ecr = started(await FakeEcr.start(keyring));
    const sts = started(await FakeSts.start(keyring));
    ecr.tokenLifetimeMs = lifetime * 1000;
    sts.roles.add(SAMPLES.ecrRole);
    const awsKeys = keyring.mint(false, 'dev');

    const oauth = started(await FakeGoogleOAuth.start());
    const metadata = started(await FakeGceMetadata.start());
    oauth.expiresInSeconds = Math.round((lifetime * 4) / 3);
    metadata.expiresInSeconds = oauth.expiresInSeconds;
    const gcpKey = makeServiceAccountKey(SAMPLES.gcpEmail);
    oauth.trust(gcpKey);

    const aad = new IssuedAadTokens();
    const entra = started(await FakeEntraId.start(aad));
    const acr = started(await FakeAcr.start(aad, SAMPLES.acrHost));
    acr.refreshTokenLifetimeMs = Math.round((lifetime * 5) / 3) * 1000;
    const azureSecret = `dev-client-secret-${randomBytes(16).toString('hex')}`;
    entra.clientSecrets.set(SAMPLES.acrClientId, azureSecret);

    const caFile = join(dir, 'fake-clouds-ca.pem');
    writeFileSync(caFile, testCertificates().caCert);
    // Nothing from this machine (~/.aws, gcloud's ADC, AZURE_* variables) reaches the operator.
    const { HOME: _home, ...googleEnv } = GOOGLE_CLEAN_ENV;
    const env: EnvVars = {
      ...AWS_CLEAN_ENV,
      ...googleEnv,
      ...AZURE_CLEAN_ENV,
      AWS_ENDPOINT_URL_ECR: ecr.url,
      AWS_ENDPOINT_URL_STS: sts.url,
      GCE_METADATA_HOST: metadata.host,
      REGCRED_GCP_TOKEN_URL: oauth.tokenUrl,
      REGCRED_AZURE_AUTHORITY_HOST: entra.authorityHost,
      REGCRED_ACR_EXCHANGE_URL: `${acr.server.url}/oauth2/exchange?registry={host}`,
      REGCRED_CLOUD_CA_FILE: caFile,
    };
    const secrets = [
      devSecret('aws-keys', 'ECR/STS fake', {
        AWS_ACCESS_KEY_ID: awsKeys.accessKeyId,
        AWS_SECRET_ACCESS_KEY: awsKeys.secretAccessKey,
      }),
      devSecret('gcp-key', 'Google token endpoint fake', { 'key.json': gcpKey.json }),
      devSecret('azure-sp', 'Entra ID fake', { clientSecret: azureSecret }),
    ];
    const minutes = (seconds: number) =>
      seconds % 60 === 0 ? `${seconds / 60} min` : `${(seconds / 60).toFixed(1)} min`;
    return {
      env,
      fakes,
      secrets: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: secrets }),
      describe: [
        `  ECR ${ecr.url} and STS ${sts.url}: tokens live ${minutes(lifetime)}`,
        `  Google token endpoint ${oauth.tokenUrl}, metadata server ${metadata.host}: tokens live ${minutes(oauth.expiresInSeconds)}`,
        `  Entra ID ${entra.authorityHost} and ACR ${acr.server.url}: refresh tokens live ${minutes(acr.refreshTokenLifetimeMs / 1000)}`,
      ],
    };
  } catch (error) {
    await Promise.all(fakes.map((fake) => fake.close()));
    throw error;
  }
}

/** The operator's environment: ours with `overrides` applied (undefined deletes). */
function withEnv(overrides: EnvVars): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

let plane: ControlPlane | undefined;
let operator: ChildProcess | undefined;
/** The `kubectl wait` that reports when every sample is Ready. */
let readyWatch: ChildProcess | undefined;
/** Temp files of this run (the fakes' CA); removed on exit. */
const tempDir = mkdtempSync(join(tmpdir(), 'regcred-dev-'));
process.on('exit', () => rmSync(tempDir, { recursive: true, force: true }));
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
    readyWatch?.kill('SIGKILL');
    process.exit(code);
  }
  stopping = true;
  readyWatch?.kill('SIGTERM');
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
  let clouds: CloudFakes;
  try {
    clouds = await startCloudFakes(tempDir);
  } catch (error) {
    complain(
      `the local cloud fakes did not start: ${error instanceof Error ? error.message : error}`,
    );
    return stop(1);
  }
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
    // The samples' cloud source Secrets hold placeholders no cloud accepts: replace them with
    // the dev ones the local fakes accept.
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: clouds.secrets });
    if (applied.code !== 0)
      throw new Error(`kubectl apply (dev source Secrets): ${applied.stderr}`);
    await kubectl(
      'annotate',
      '--overwrite',
      'regcred',
      'sample-ecr',
      'sample-gcp',
      'sample-acr',
      'dev.regcred.dev/note=DEV ONLY: npm run dev points the operator at local fakes of ECR/STS, ' +
        'Google and Entra ID/ACR (the spec is the one in config/samples)',
    );
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
    { stdio: ['ignore', 'inherit', 'inherit'], env: withEnv(clouds.env) },
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
  say(`  ${k} get regcred -w                 # NEXT REFRESH ticks; a rotation bumps the Secrets`);
  say(`  ${k} describe regcred sample-ecr`);
  say(`  ${k} get secrets -A -l app.kubernetes.io/managed-by=regcred-operator`);
  say(`  ${k} get sa default -n team-a -o yaml`);
  say(`  ${k} get events -n team-a`);
  say(`  ${k} create namespace team-c && ${k} label namespace team-c tenant=acme`);
  say(`  curl -s http://127.0.0.1:${metricsPort}/metrics | grep regcred_`);
  say(`  curl -s http://127.0.0.1:${healthPort}/readyz`);
  say('The cloud samples talk to local fakes (DEV ONLY; config/samples name the real clouds):');
  for (const line of clouds.describe) say(line);
  say('Ctrl-C stops the operator and the control plane.');
  say('');
  watchReady(cluster);
}

/** Says once every sample is Ready, and how long that took from the start of npm run dev. */
function watchReady(cluster: ControlPlane): void {
  const watch = spawn(
    join(cluster.binDir, 'kubectl'),
    [
      `--kubeconfig=${cluster.kubeconfigPath}`,
      'wait',
      '--for=condition=Ready',
      '--timeout=600s',
      ...SAMPLES.names.map((name) => `regcred/${name}`),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  readyWatch = watch;
  let stderr = '';
  watch.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  watch.once('exit', (code) => {
    readyWatch = undefined;
    if (stopping) return;
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
    if (code === 0) say(`All ${SAMPLES.names.length} samples are Ready, ${seconds} s after start.`);
    else complain(`Not every sample is Ready after ${seconds} s: ${stderr.trim()}`);
  });
}

await main();

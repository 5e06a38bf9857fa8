// Amazon ECR: GetAuthorizationToken in the registry's region, signed with static keys from a
// Secret or the SDK's default chain (IRSA web identity, EKS Pod Identity, env, IMDS), with an
// optional role assumed on top. The decoded `user:password` is the login; `expiresAt` (12 h)
// drives the refresh schedule.
import { ECRClient, type ECRClientConfig, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { fromNodeProviderChain, fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { secretValues } from '../../observability/redact.ts';
import { decodeAuthField } from '../dockerconfigjson.ts';
import { CredentialError } from '../errors.ts';
import {
  type CloudToken,
  type CloudTokenInput,
  optionalSecretKey,
  refreshFailed,
  registryHost,
  requireSecretKey,
} from './cloud-token.ts';

export const AWS_ACCESS_KEY_ID_KEY = 'AWS_ACCESS_KEY_ID';
export const AWS_SECRET_ACCESS_KEY_KEY = 'AWS_SECRET_ACCESS_KEY';
export const AWS_SESSION_TOKEN_KEY = 'AWS_SESSION_TOKEN';
/** Shows up in CloudTrail as the assumed role's session name. */
export const ROLE_SESSION_NAME = 'regcred-operator';

// <account>.dkr.ecr[-fips].<region>.<partition domain>, and the dual-stack
// <account>.dkr-ecr[-fips].<region>.on.aws, as the kubelet's ECR credential provider matches.
const ECR_HOST =
  /^(\d{12})\.dkr[.-]ecr(?:-fips)?\.([a-z0-9][a-z0-9-]*)\.(?:amazonaws\.com(?:\.cn)?|on\.aws|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$/;

export interface EcrRegistry {
  /** Undefined when `server` is not an ECR host (then the caller's default registry is used). */
  accountId?: string;
  region: string;
}

/** Account and region of an ECR registry; `ecr.region` wins over the one in the host. */
export function ecrRegistry(server: string, region: string | undefined): EcrRegistry {
  const match = ECR_HOST.exec(registryHost(server));
  const resolvedRegion = region || match?.[2];
  if (resolvedRegion === undefined) {
    throw new CredentialError(
      'InvalidSpec',
      'ecr: server is not an ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com); set ecr.region',
    );
  }
  if (!REGION.test(resolvedRegion)) {
    throw new CredentialError(
      'InvalidSpec',
      `ecr: ${JSON.stringify(resolvedRegion)} is not an AWS region`,
    );
  }
  const accountId = match?.[1];
  return accountId === undefined
    ? { region: resolvedRegion }
    : { accountId, region: resolvedRegion };
}

export async function fetchEcrToken(input: CloudTokenInput): Promise<CloudToken> {
  const ecr = input.registry.ecr;
  const server = input.registry.server;
  if (ecr === undefined || !server) {
    throw new CredentialError('InvalidSpec', 'ecr: the registry needs a server and an ecr block');
  }
  const { accountId, region } = ecrRegistry(server, ecr.region);
  const endpoints = input.endpoints ?? {};
  const stsConfig = {
    region,
    ...(endpoints.stsEndpoint ? { endpoint: endpoints.stsEndpoint } : {}),
  };

  let credentials: ECRClientConfig['credentials'];
  const held: string[] = [];
  if (ecr.credentialsSecretRef) {
    const field = 'ecr.credentialsSecretRef';
    const accessKeyId = requireSecretKey(input, AWS_ACCESS_KEY_ID_KEY, field).trim();
    const secretAccessKey = requireSecretKey(input, AWS_SECRET_ACCESS_KEY_KEY, field).trim();
    const sessionToken = optionalSecretKey(input, AWS_SESSION_TOKEN_KEY)?.trim();
    secretValues.add(secretAccessKey, sessionToken);
    held.push(secretAccessKey);
    if (sessionToken !== undefined) held.push(sessionToken);
    credentials =
      sessionToken === undefined
        ? { accessKeyId, secretAccessKey }
        : { accessKeyId, secretAccessKey, sessionToken };
  } else {
    // A fresh chain per fetch: nothing stale survives a rotated token file or a restarted agent,
    // and a fetch happens every few hours at most.
    credentials = fromNodeProviderChain({ clientConfig: stsConfig });
  }
  if (ecr.roleArn) {
    credentials = fromTemporaryCredentials({
      masterCredentials: credentials,
      params: { RoleArn: ecr.roleArn, RoleSessionName: ROLE_SESSION_NAME },
      clientConfig: stsConfig,
    });
  }

  const client = new ECRClient({
    region,
    credentials,
    ...(endpoints.ecrEndpoint ? { endpoint: endpoints.ecrEndpoint } : {}),
  });
  try {
    const out = await client.send(
      // registryIds is deprecated (the token works for every registry the principal may read),
      // but still selects the registry whose proxyEndpoint is returned.
      new GetAuthorizationTokenCommand(accountId === undefined ? {} : { registryIds: [accountId] }),
      input.signal ? { abortSignal: input.signal } : {},
    );
    const data = out.authorizationData?.[0];
    const login = data?.authorizationToken ? decodeAuthField(data.authorizationToken) : null;
    if (!login || login.password === '') {
      throw new CredentialError(
        'RefreshFailed',
        'ecr: GetAuthorizationToken returned no authorization token',
      );
    }
    secretValues.add(login.password, data?.authorizationToken);
    const expiresAt = data?.expiresAt;
    if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
      throw new CredentialError('RefreshFailed', 'ecr: GetAuthorizationToken returned no expiry');
    }
    return { username: login.username, password: login.password, expiresAt };
  } catch (err) {
    if (
      err instanceof Error &&
      err.name === 'CredentialsProviderError' &&
      !ecr.credentialsSecretRef
    ) {
      throw refreshFailed(
        'ecr: no credentials from the default chain (IRSA, EKS Pod Identity, environment, IMDS)',
        err,
        ...held,
      );
    }
    throw refreshFailed('ecr', err, ...held);
  } finally {
    client.destroy();
  }
}

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
  registryHost,
  requireSecretKey,
} from './cloud-token.ts';
import {
  cannotReach,
  codeAndStatus,
  explained,
  hostOf,
  networkFailure,
  transient,
  transientSentence,
} from './failure.ts';

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
  let hasSessionToken = false;
  if (ecr.credentialsSecretRef) {
    const field = 'ecr.credentialsSecretRef';
    const accessKeyId = requireSecretKey(input, AWS_ACCESS_KEY_ID_KEY, field).trim();
    const secretAccessKey = requireSecretKey(input, AWS_SECRET_ACCESS_KEY_KEY, field).trim();
    const sessionToken = optionalSecretKey(input, AWS_SESSION_TOKEN_KEY)?.trim();
    secretValues.add(secretAccessKey, sessionToken);
    held.push(secretAccessKey);
    if (sessionToken !== undefined) held.push(sessionToken);
    hasSessionToken = sessionToken !== undefined;
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

  // Which call failed, STS (or the default chain) or ECR, decides what a failure message names.
  const thrownByCredentials = new WeakSet<object>();
  if (typeof credentials === 'function') {
    const provider = credentials;
    credentials = async (...args: Parameters<typeof provider>) => {
      try {
        return await provider(...args);
      } catch (err) {
        if (typeof err === 'object' && err !== null) thrownByCredentials.add(err);
        throw err;
      }
    };
  }
  const context: AwsFailureContext = {
    region,
    ...(ecr.credentialsSecretRef && input.secretName ? { secretName: input.secretName } : {}),
    fromSecret: ecr.credentialsSecretRef !== undefined,
    hasSessionToken,
    ...(ecr.roleArn ? { roleArn: ecr.roleArn } : {}),
    ecrHost: hostOf(
      endpoints.ecrEndpoint ??
        process.env.AWS_ENDPOINT_URL_ECR ??
        process.env.AWS_ENDPOINT_URL ??
        `https://api.ecr.${region}.amazonaws.com`,
    ),
    stsHost: hostOf(
      endpoints.stsEndpoint ??
        process.env.AWS_ENDPOINT_URL_STS ??
        process.env.AWS_ENDPOINT_URL ??
        `https://sts.${region}.amazonaws.com`,
    ),
  };

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
    if (err instanceof CredentialError) throw err;
    const viaCredentials = typeof err === 'object' && err !== null && thrownByCredentials.has(err);
    throw explained(explainAwsFailure(err, context, viaCredentials), err, ...held);
  } finally {
    client.destroy();
  }
}

export interface AwsFailureContext {
  region: string;
  /** `namespace/name` of the Secret the keys came from. */
  secretName?: string;
  fromSecret: boolean;
  hasSessionToken: boolean;
  roleArn?: string;
  /** Where GetAuthorizationToken and STS calls go (host[:port]). */
  ecrHost: string;
  stsHost: string;
}

/** AWS names the caller: "User: arn:aws:iam::123456789012:user/ci is not authorized …". */
const PRINCIPAL = /\bUser: (arn:aws[a-z-]*:(?:iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+)/;

/** One sentence for a failed ECR token fetch: where, what is wrong, and what to do. */
export function explainAwsFailure(
  err: unknown,
  c: AwsFailureContext,
  viaCredentials: boolean,
): string {
  const subject = `ECR in ${c.region}`;
  const secretKey = (key: string): string =>
    c.secretName === undefined ? `key ${key} of the Secret` : `Secret ${c.secretName} key ${key}`;
  const net = networkFailure(err);
  if (net) {
    const is = (host: string, configured: string): boolean =>
      configured === host || configured.startsWith(`${host}:`);
    const stsLike =
      net.host === undefined
        ? viaCredentials
        : is(net.host, c.stsHost) || net.host.startsWith('sts.');
    const ecrLike =
      net.host === undefined
        ? !viaCredentials
        : is(net.host, c.ecrHost) || net.host.startsWith('api.ecr.');
    if (!stsLike && !ecrLike) {
      // The default chain's own endpoints (IMDS, the EKS Pod Identity agent).
      return `${subject}: the default credential chain ${cannotReach(net, 'its endpoint')}`;
    }
    return `${subject}: ${cannotReach(
      net,
      stsLike ? c.stsHost : c.ecrHost,
      stsLike ? 'AWS_ENDPOINT_URL_STS' : 'AWS_ENDPOINT_URL_ECR',
    )}`;
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof e.name === 'string' ? e.name : undefined;
  const message = typeof e.message === 'string' ? (e.message.split(/\r?\n/, 1)[0] ?? '') : '';
  const status =
    typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const tag = codeAndStatus(name, status);
  const service = viaCredentials ? 'STS' : 'ECR';
  const principal = PRINCIPAL.exec(message)?.[1];
  switch (name) {
    case 'CredentialsProviderError':
      return `${subject}: no AWS credentials in the default chain (IRSA web identity, EKS Pod Identity, environment, instance metadata): set ecr.credentialsSecretRef, or give the operator's ServiceAccount an IAM role`;
    case 'UnrecognizedClientException':
    case 'InvalidClientTokenId':
      return c.fromSecret
        ? `${subject}: AWS does not know the access key id in ${secretKey('AWS_ACCESS_KEY_ID')}${tag}: the key was deleted or deactivated, or belongs to another partition`
        : `${subject}: AWS does not know the access key id the default credential chain found${tag}`;
    case 'InvalidSignatureException':
    case 'SignatureDoesNotMatch':
      return c.fromSecret
        ? `${subject}: the secret access key in ${secretKey('AWS_SECRET_ACCESS_KEY')} does not belong to the access key id in key AWS_ACCESS_KEY_ID${tag}`
        : `${subject}: the secret access key the default credential chain found does not match its access key id${tag}`;
    case 'ExpiredToken':
    case 'ExpiredTokenException':
    case 'RequestExpired':
      if (c.fromSecret && c.hasSessionToken)
        return `${subject}: the session token in ${secretKey('AWS_SESSION_TOKEN')} has expired${tag}: put fresh temporary keys in the Secret, or long-term keys without AWS_SESSION_TOKEN`;
      if (!c.fromSecret && viaCredentials)
        return `${subject}: STS says the ServiceAccount token has expired${tag}: check that the projected token file (AWS_WEB_IDENTITY_TOKEN_FILE) is refreshed`;
      return `${subject}: the AWS credentials have expired${tag}`;
    case 'InvalidIdentityToken':
    case 'IDPRejectedClaim':
      return `${subject}: STS refused the ServiceAccount token${tag}: check the cluster's OIDC provider in IAM and the trust policy of ${process.env.AWS_ROLE_ARN || 'the role'}`;
    case 'AccessDenied':
      if (viaCredentials)
        return `${subject}: STS does not let ${principal ?? 'these credentials'} assume ${c.roleArn ?? (process.env.AWS_ROLE_ARN || 'the role')}${tag}: check the role's trust policy and the caller's sts:AssumeRole permission`;
      break;
    case 'AccessDeniedException':
      return `${subject}: ${principal ?? 'these credentials'} may not call ecr:GetAuthorizationToken${tag}: allow it in an IAM policy (AmazonEC2ContainerRegistryReadOnly has it)`;
  }
  if (transient(status, name)) return transientSentence(`${subject}: ${service}`, status, name);
  return `${subject}: ${service} refused the request${tag}${message ? `: ${message}` : ''}`;
}

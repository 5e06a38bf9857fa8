// Local stand-ins for the AWS endpoints the ECR source talks to: ECR (AWS JSON 1.1), STS (query
// protocol, XML answers) and the EKS Pod Identity agent. They share a keyring, so a key pair
// minted by STS or the agent is one ECR accepts, and ECR verifies the SigV4 signature itself.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { type FakeResponse, FakeServer, formOf, header, type RecordedCall } from './fake-server.ts';

export interface AwsKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Every key pair the fakes know, by access key id. */
export class AwsKeyring {
  readonly #keys = new Map<string, AwsKeys>();

  add(keys: AwsKeys): AwsKeys {
    this.#keys.set(keys.accessKeyId, keys);
    return keys;
  }

  get(accessKeyId: string): AwsKeys | undefined {
    return this.#keys.get(accessKeyId);
  }

  /** A new long-term (AKIA) or temporary (ASIA, with a session token) key pair. */
  mint(temporary: boolean, label = 'minted'): AwsKeys {
    const accessKeyId = `${temporary ? 'ASIA' : 'AKIA'}${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = `${label}-secret-${randomBytes(16).toString('hex')}`;
    return this.add(
      temporary
        ? {
            accessKeyId,
            secretAccessKey,
            sessionToken: `${label}-session-${randomBytes(24).toString('hex')}`,
          }
        : { accessKeyId, secretAccessKey },
    );
  }
}

export type SigV4Result =
  | { ok: true; keys: AwsKeys; region: string; service: string }
  | { ok: false; code: string; message: string };

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

/** Checks the request's SigV4 Authorization header against the keyring, as AWS would. */
export function verifySigV4(call: RecordedCall, keyring: AwsKeyring): SigV4Result {
  const authorization = header(call, 'authorization');
  if (!authorization) {
    return {
      ok: false,
      code: 'MissingAuthenticationTokenException',
      message: 'Missing Authentication Token',
    };
  }
  const match = AUTHORIZATION.exec(authorization);
  if (!match) {
    return {
      ok: false,
      code: 'IncompleteSignatureException',
      message: 'Authorization header is not SigV4',
    };
  }
  const [
    ,
    accessKeyId = '',
    date = '',
    region = '',
    service = '',
    signedHeaders = '',
    signature = '',
  ] = match;
  const keys = keyring.get(accessKeyId);
  if (!keys) {
    return {
      ok: false,
      code: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    };
  }
  if ((keys.sessionToken ?? undefined) !== header(call, 'x-amz-security-token')) {
    return {
      ok: false,
      code: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    };
  }
  const amzDate = header(call, 'x-amz-date') ?? '';
  const canonicalHeaders = signedHeaders
    .split(';')
    .map((name) => `${name}:${(header(call, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const query = [...call.query.entries()]
    .map(([k, v]) => [encodeRfc3986(k), encodeRfc3986(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const payloadHash = header(call, 'x-amz-content-sha256') ?? sha256Hex(call.body);
  const canonicalRequest = [
    call.method,
    call.path.split('/').map(encodeRfc3986).join('/'),
    query,
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  let key = hmac(`AWS4${keys.secretAccessKey}`, date);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  if (expected !== signature) {
    return {
      ok: false,
      code: 'InvalidSignatureException',
      message: 'The request signature we calculated does not match the signature you provided.',
    };
  }
  return { ok: true, keys, region, service };
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256Hex(data: string): string {
  return createHash('sha256').update(data).digest('hex');
}

function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export interface EcrIssued {
  password: string;
  expiresAt: Date;
  /** When the token was handed out. */
  issuedAt: Date;
  accessKeyId: string;
  region: string;
  registryIds: string[] | undefined;
}

/** ECR's GetAuthorizationToken over AWS JSON 1.1. */
export class FakeEcr {
  readonly server: FakeServer;
  readonly keyring: AwsKeyring;
  readonly issued: EcrIssued[] = [];
  /** Lifetime of the tokens handed out. */
  tokenLifetimeMs = 12 * 60 * 60 * 1000;
  /** When set, every GetAuthorizationToken fails with this AWS error. */
  failWith: { code: string; message: string; status?: number } | undefined;
  /** By registry id: GetAuthorizationToken for that registry fails with this AWS error, so
   * one test's failure leaves other registries alone. */
  readonly failFor = new Map<string, { code: string; message: string; status?: number }>();
  /** By registry id: the lifetime of the tokens handed out for it (else tokenLifetimeMs). */
  readonly lifetimeFor = new Map<string, number>();

  private constructor(server: FakeServer, keyring: AwsKeyring) {
    this.server = server;
    this.keyring = keyring;
  }

  static async start(keyring: AwsKeyring): Promise<FakeEcr> {
    let fake: FakeEcr | undefined;
    const server = await FakeServer.start((call) => (fake as FakeEcr).handle(call));
    fake = new FakeEcr(server, keyring);
    return fake;
  }

  get url(): string {
    return this.server.url;
  }

  /** GetAuthorizationToken requests received. */
  get tokenCalls(): number {
    return this.server.calls.filter((c) =>
      header(c, 'x-amz-target')?.endsWith('.GetAuthorizationToken'),
    ).length;
  }

  /** GetAuthorizationToken requests naming `registryId` in registryIds, answered or not. */
  tokenCallsFor(registryId: string): RecordedCall[] {
    return this.server.calls.filter(
      (c) =>
        header(c, 'x-amz-target')?.endsWith('.GetAuthorizationToken') &&
        registryIdsOf(c)?.includes(registryId) === true,
    );
  }

  /** The tokens handed out for `registryId`, oldest first. */
  issuedFor(registryId: string): EcrIssued[] {
    return this.issued.filter((i) => i.registryIds?.includes(registryId) === true);
  }

  private handle(call: RecordedCall): FakeResponse {
    if (call.method !== 'POST' || call.path !== '/')
      return awsJsonError(404, 'UnknownOperationException', 'not found');
    if (
      header(call, 'x-amz-target') !== 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken'
    ) {
      return awsJsonError(400, 'UnknownOperationException', 'unknown operation');
    }
    if (!header(call, 'content-type')?.startsWith('application/x-amz-json-1.1')) {
      return awsJsonError(400, 'SerializationException', 'expected application/x-amz-json-1.1');
    }
    const auth = verifySigV4(call, this.keyring);
    if (!auth.ok) return awsJsonError(400, auth.code, auth.message);
    if (auth.service !== 'ecr')
      return awsJsonError(400, 'InvalidSignatureException', 'credential scope is not ecr');
    const registryIds = registryIdsOf(call);
    const account = registryIds?.[0] ?? '000000000000';
    const failure = this.failWith ?? this.failFor.get(account);
    if (failure) return awsJsonError(failure.status ?? 400, failure.code, failure.message);
    const password = `ecr-password-${randomBytes(24).toString('hex')}`;
    const lifetimeMs = this.lifetimeFor.get(account) ?? this.tokenLifetimeMs;
    const expiresAt = new Date(Math.floor((Date.now() + lifetimeMs) / 1000) * 1000);
    this.issued.push({
      password,
      expiresAt,
      issuedAt: new Date(),
      accessKeyId: auth.keys.accessKeyId,
      region: auth.region,
      registryIds,
    });
    return {
      status: 200,
      headers: { 'content-type': 'application/x-amz-json-1.1' },
      body: {
        authorizationData: [
          {
            authorizationToken: Buffer.from(`AWS:${password}`).toString('base64'),
            expiresAt: expiresAt.getTime() / 1000,
            proxyEndpoint: `https://${account}.dkr.ecr.${auth.region}.amazonaws.com`,
          },
        ],
      },
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function registryIdsOf(call: RecordedCall): string[] | undefined {
  try {
    return (JSON.parse(call.body || '{}') as { registryIds?: string[] }).registryIds;
  } catch {
    return undefined;
  }
}

function awsJsonError(status: number, code: string, message: string): FakeResponse {
  return {
    status,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': code },
    body: { __type: code, message },
  };
}

export interface StsIssued {
  action: 'AssumeRole' | 'AssumeRoleWithWebIdentity';
  roleArn: string;
  sessionName: string;
  keys: AwsKeys;
  /** The caller's access key id (AssumeRole only). */
  callerAccessKeyId?: string;
  region?: string;
}

/** STS AssumeRole (signed) and AssumeRoleWithWebIdentity (a token instead of a signature). */
export class FakeSts {
  readonly server: FakeServer;
  readonly keyring: AwsKeyring;
  readonly issued: StsIssued[] = [];
  /** Roles that may be assumed; anything else is AccessDenied. */
  readonly roles = new Set<string>();
  /** The only web identity token AssumeRoleWithWebIdentity accepts. */
  webIdentityToken: string | undefined;
  sessionLifetimeMs = 60 * 60 * 1000;
  failWith: { code: string; message: string; status?: number } | undefined;

  private constructor(server: FakeServer, keyring: AwsKeyring) {
    this.server = server;
    this.keyring = keyring;
  }

  static async start(keyring: AwsKeyring): Promise<FakeSts> {
    let fake: FakeSts | undefined;
    const server = await FakeServer.start((call) => (fake as FakeSts).handle(call));
    fake = new FakeSts(server, keyring);
    return fake;
  }

  get url(): string {
    return this.server.url;
  }

  callsOf(action: StsIssued['action']): number {
    return this.server.calls.filter((c) => formOf(c).get('Action') === action).length;
  }

  private handle(call: RecordedCall): FakeResponse {
    const form = formOf(call);
    const action = form.get('Action');
    if (
      call.method !== 'POST' ||
      (action !== 'AssumeRole' && action !== 'AssumeRoleWithWebIdentity')
    ) {
      return stsError(400, 'InvalidAction', 'unsupported action');
    }
    if (form.get('Version') !== '2011-06-15')
      return stsError(400, 'InvalidParameterValue', 'bad Version');
    const roleArn = form.get('RoleArn') ?? '';
    const sessionName = form.get('RoleSessionName') ?? '';
    let callerAccessKeyId: string | undefined;
    let region: string | undefined;
    if (action === 'AssumeRole') {
      const auth = verifySigV4(call, this.keyring);
      if (!auth.ok) return stsError(403, auth.code, auth.message);
      if (auth.service !== 'sts')
        return stsError(403, 'SignatureDoesNotMatch', 'credential scope is not sts');
      callerAccessKeyId = auth.keys.accessKeyId;
      region = auth.region;
    } else {
      if (
        this.webIdentityToken === undefined ||
        form.get('WebIdentityToken') !== this.webIdentityToken
      ) {
        return stsError(
          400,
          'InvalidIdentityToken',
          "Couldn't retrieve verification key from your identity provider",
        );
      }
    }
    if (this.failWith)
      return stsError(this.failWith.status ?? 403, this.failWith.code, this.failWith.message);
    if (!this.roles.has(roleArn)) {
      return stsError(
        403,
        'AccessDenied',
        `Not authorized to perform sts:${action} on resource ${roleArn}`,
      );
    }
    const keys = this.keyring.mint(true, 'sts');
    this.issued.push({
      action,
      roleArn,
      sessionName,
      keys,
      ...(callerAccessKeyId ? { callerAccessKeyId } : {}),
      ...(region ? { region } : {}),
    });
    const expiration = new Date(Date.now() + this.sessionLifetimeMs)
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
    const role = roleArn.split('/').pop() ?? 'role';
    const account = roleArn.split(':')[4] ?? '000000000000';
    const body = [
      `<${action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`,
      `<${action}Result>`,
      '<Credentials>',
      `<AccessKeyId>${keys.accessKeyId}</AccessKeyId>`,
      `<SecretAccessKey>${keys.secretAccessKey}</SecretAccessKey>`,
      `<SessionToken>${keys.sessionToken ?? ''}</SessionToken>`,
      `<Expiration>${expiration}</Expiration>`,
      '</Credentials>',
      '<AssumedRoleUser>',
      `<Arn>arn:aws:sts::${account}:assumed-role/${role}/${sessionName}</Arn>`,
      `<AssumedRoleId>ROLEID${randomBytes(6).toString('hex').toUpperCase()}:${sessionName}</AssumedRoleId>`,
      '</AssumedRoleUser>',
      `</${action}Result>`,
      `<ResponseMetadata><RequestId>${randomBytes(8).toString('hex')}</RequestId></ResponseMetadata>`,
      `</${action}Response>`,
    ].join('');
    return { status: 200, headers: { 'content-type': 'text/xml' }, body };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function stsError(status: number, code: string, message: string): FakeResponse {
  return {
    status,
    headers: { 'content-type': 'text/xml' },
    body: `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomBytes(8).toString('hex')}</RequestId></ErrorResponse>`,
  };
}

/** The EKS Pod Identity agent: GET with the token file's content as Authorization. */
export class FakePodIdentityAgent {
  readonly server: FakeServer;
  readonly keyring: AwsKeyring;
  readonly issued: AwsKeys[] = [];
  /** The only Authorization value accepted. */
  authorizationToken: string | undefined;
  lifetimeMs = 6 * 60 * 60 * 1000;

  private constructor(server: FakeServer, keyring: AwsKeyring) {
    this.server = server;
    this.keyring = keyring;
  }

  static async start(keyring: AwsKeyring): Promise<FakePodIdentityAgent> {
    let fake: FakePodIdentityAgent | undefined;
    const server = await FakeServer.start((call) => (fake as FakePodIdentityAgent).handle(call));
    fake = new FakePodIdentityAgent(server, keyring);
    return fake;
  }

  /** The full URI for AWS_CONTAINER_CREDENTIALS_FULL_URI. */
  get credentialsUri(): string {
    return `${this.server.url}/v1/credentials`;
  }

  get credentialCalls(): number {
    return this.server.callsTo('GET', '/v1/credentials').length;
  }

  private handle(call: RecordedCall): FakeResponse {
    if (call.method !== 'GET' || call.path !== '/v1/credentials') return { status: 404, body: {} };
    const authorization = header(call, 'authorization');
    if (this.authorizationToken === undefined || authorization !== this.authorizationToken) {
      return { status: 401, body: { Code: 'AccessDeniedException', Message: 'invalid token' } };
    }
    const keys = this.keyring.mint(true, 'podidentity');
    this.issued.push(keys);
    return {
      status: 200,
      body: {
        AccessKeyId: keys.accessKeyId,
        SecretAccessKey: keys.secretAccessKey,
        Token: keys.sessionToken,
        AccountId: '123456789012',
        Expiration: new Date(Date.now() + this.lifetimeMs).toISOString(),
      },
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

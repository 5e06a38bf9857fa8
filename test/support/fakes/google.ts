// Local stand-ins for Google's OAuth token endpoint (JWT-bearer grant for service-account keys,
// STS token exchange for external_account, IAM credentials impersonation) and the GCE metadata
// server. The token endpoint verifies each assertion's RS256 signature with the public key of a
// key pair generated for the test.
import { generateKeyPairSync, type KeyObject, randomBytes, verify } from 'node:crypto';
import { type FakeResponse, FakeServer, formOf, header, type RecordedCall } from './fake-server.ts';

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export interface ServiceAccountKey {
  email: string;
  /** The key file's JSON text, as `gcloud iam service-accounts keys create` writes it. */
  json: string;
  privateKey: string;
  publicKey: KeyObject;
}

/** A fresh RSA key pair dressed as a service-account key file. */
export function makeServiceAccountKey(
  email = 'puller@acme-project.iam.gserviceaccount.com',
): ServiceAccountKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const json = JSON.stringify({
    type: 'service_account',
    project_id: 'acme-project',
    private_key_id: randomBytes(20).toString('hex'),
    private_key: pem,
    client_email: email,
    client_id: '1234567890',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: 'https://oauth2.googleapis.com/token',
  });
  return { email, json, privateKey: pem, publicKey };
}

export interface GoogleIssued {
  grant: 'jwt-bearer' | 'token-exchange' | 'impersonation';
  accessToken: string;
  expiresInSeconds: number;
  subject: string;
}

/** Google's OAuth token endpoint and STS / IAM credentials, on one server. */
export class FakeGoogleOAuth {
  readonly server: FakeServer;
  readonly issued: GoogleIssued[] = [];
  /** Service accounts whose assertions are accepted, by email. */
  readonly keys = new Map<string, KeyObject>();
  /** The subject token (e.g. a projected Kubernetes token) STS exchange accepts. */
  subjectToken: string | undefined;
  /** The workload identity pool provider audience STS exchange expects. */
  audience: string | undefined;
  expiresInSeconds = 3599;
  /** By subject (service account email, or audience): the lifetime of its tokens in seconds. */
  readonly expiresInFor = new Map<string, number>();
  /** When set, every token request fails with this OAuth error. */
  failWith: { error: string; description: string; status?: number } | undefined;

  private constructor(server: FakeServer) {
    this.server = server;
  }

  static async start(): Promise<FakeGoogleOAuth> {
    let fake: FakeGoogleOAuth | undefined;
    const server = await FakeServer.start((call) => (fake as FakeGoogleOAuth).handle(call));
    fake = new FakeGoogleOAuth(server);
    return fake;
  }

  get tokenUrl(): string {
    return `${this.server.url}/token`;
  }

  /** service_account_impersonation_url for `email`. */
  impersonationUrl(email: string): string {
    return `${this.server.url}/v1/projects/-/serviceAccounts/${email}:generateAccessToken`;
  }

  trust(key: ServiceAccountKey): void {
    this.keys.set(key.email, key.publicKey);
  }

  get tokenCalls(): number {
    return this.server.callsTo('POST', '/token').length;
  }

  callsOf(grant: GoogleIssued['grant']): number {
    if (grant === 'impersonation')
      return this.server.callsTo('POST', /:generateAccessToken$/).length;
    const type = grant === 'jwt-bearer' ? JWT_BEARER : TOKEN_EXCHANGE;
    return this.server.callsTo('POST', '/token').filter((c) => formOf(c).get('grant_type') === type)
      .length;
  }

  /** JWT-bearer token requests whose assertion was issued by `email`, answered or not. */
  tokenCallsFor(email: string): RecordedCall[] {
    return this.server.callsTo('POST', '/token').filter((c) => {
      const form = formOf(c);
      if (form.get('grant_type') !== JWT_BEARER) return false;
      const payload = (form.get('assertion') ?? '').split('.')[1] ?? '';
      try {
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
          iss?: unknown;
        };
        return claims.iss === email;
      } catch {
        return false;
      }
    });
  }

  /** The tokens handed out to `subject` (a service account email), oldest first. */
  issuedFor(subject: string): GoogleIssued[] {
    return this.issued.filter((i) => i.subject === subject);
  }

  private handle(call: RecordedCall): FakeResponse {
    if (call.method === 'POST' && call.path === '/token') {
      if (this.failWith)
        return oauthError(
          this.failWith.status ?? 400,
          this.failWith.error,
          this.failWith.description,
        );
      const form = formOf(call);
      const grant = form.get('grant_type');
      if (grant === JWT_BEARER) return this.jwtBearer(form.get('assertion') ?? '');
      if (grant === TOKEN_EXCHANGE) return this.tokenExchange(form);
      return oauthError(400, 'unsupported_grant_type', 'Invalid grant_type');
    }
    const impersonation = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(
      call.path,
    );
    if (call.method === 'POST' && impersonation)
      return this.impersonate(call, impersonation[1] ?? '');
    return { status: 404, body: { error: 'not_found' } };
  }

  private jwtBearer(assertion: string): FakeResponse {
    const [head = '', body = '', signature = ''] = assertion.split('.');
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
    } catch {
      return oauthError(400, 'invalid_grant', 'Invalid JWT');
    }
    const key = typeof claims.iss === 'string' ? this.keys.get(claims.iss) : undefined;
    if (header.alg !== 'RS256' || key === undefined)
      return oauthError(400, 'invalid_grant', 'Invalid JWT Signature.');
    const signed = verify(
      'RSA-SHA256',
      Buffer.from(`${head}.${body}`),
      key,
      Buffer.from(signature, 'base64url'),
    );
    if (!signed) return oauthError(400, 'invalid_grant', 'Invalid JWT Signature.');
    const now = Date.now() / 1000;
    if (claims.aud !== 'https://oauth2.googleapis.com/token')
      return oauthError(400, 'invalid_grant', 'Invalid JWT audience.');
    if (
      typeof claims.exp !== 'number' ||
      claims.exp < now ||
      typeof claims.iat !== 'number' ||
      claims.iat > now + 60
    ) {
      return oauthError(400, 'invalid_grant', 'Invalid JWT: Token must be a short-lived token.');
    }
    if (
      typeof claims.scope !== 'string' ||
      !claims.scope.split(' ').includes(CLOUD_PLATFORM_SCOPE)
    ) {
      return oauthError(400, 'invalid_scope', 'Invalid OAuth scope.');
    }
    return this.grantToken('jwt-bearer', claims.iss as string);
  }

  private tokenExchange(form: URLSearchParams): FakeResponse {
    if (this.subjectToken === undefined || form.get('subject_token') !== this.subjectToken) {
      return oauthError(400, 'invalid_grant', 'The subject token is invalid.');
    }
    if (this.audience !== undefined && form.get('audience') !== this.audience) {
      return oauthError(
        400,
        'invalid_target',
        'The target service indicated by the "audience" parameter is invalid.',
      );
    }
    if (form.get('requested_token_type') !== 'urn:ietf:params:oauth:token-type:access_token') {
      return oauthError(400, 'invalid_request', 'requested_token_type');
    }
    if (!form.get('subject_token_type'))
      return oauthError(400, 'invalid_request', 'subject_token_type');
    const scope = form.get('scope') ?? '';
    if (!scope.split(' ').includes(CLOUD_PLATFORM_SCOPE))
      return oauthError(400, 'invalid_scope', 'scope');
    const granted = this.grant('token-exchange', form.get('audience') ?? '');
    return {
      status: 200,
      body: {
        access_token: granted.accessToken,
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        token_type: 'Bearer',
        expires_in: granted.expiresInSeconds,
      },
    };
  }

  private impersonate(call: RecordedCall, email: string): FakeResponse {
    const bearer = header(call, 'authorization')?.replace(/^Bearer /, '');
    if (!this.issued.some((i) => i.grant === 'token-exchange' && i.accessToken === bearer)) {
      return {
        status: 401,
        body: {
          error: {
            code: 401,
            status: 'UNAUTHENTICATED',
            message: 'Request had invalid authentication credentials.',
          },
        },
      };
    }
    const request = JSON.parse(call.body || '{}') as { scope?: string[] };
    if (!request.scope?.includes(CLOUD_PLATFORM_SCOPE)) {
      return {
        status: 400,
        body: { error: { code: 400, status: 'INVALID_ARGUMENT', message: 'scope' } },
      };
    }
    const granted = this.grant('impersonation', email);
    return {
      status: 200,
      body: {
        accessToken: granted.accessToken,
        expireTime: new Date(Date.now() + granted.expiresInSeconds * 1000).toISOString(),
      },
    };
  }

  private grant(grant: GoogleIssued['grant'], subject: string): GoogleIssued {
    const issued = {
      grant,
      accessToken: `ya29.fake-${grant}-${randomBytes(24).toString('hex')}`,
      expiresInSeconds: this.expiresInFor.get(subject) ?? this.expiresInSeconds,
      subject,
    };
    this.issued.push(issued);
    return issued;
  }

  private grantToken(grant: GoogleIssued['grant'], subject: string): FakeResponse {
    const granted = this.grant(grant, subject);
    return {
      status: 200,
      body: {
        access_token: granted.accessToken,
        expires_in: granted.expiresInSeconds,
        token_type: 'Bearer',
      },
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function oauthError(status: number, error: string, description: string): FakeResponse {
  return { status, body: { error, error_description: description } };
}

/** The GCE / GKE metadata server: `Metadata-Flavor: Google` both ways. */
export class FakeGceMetadata {
  readonly server: FakeServer;
  readonly issued: string[] = [];
  expiresInSeconds = 3599;
  failWith: { status: number; body: string } | undefined;

  private constructor(server: FakeServer) {
    this.server = server;
  }

  static async start(): Promise<FakeGceMetadata> {
    let fake: FakeGceMetadata | undefined;
    const server = await FakeServer.start((call) => (fake as FakeGceMetadata).handle(call));
    fake = new FakeGceMetadata(server);
    return fake;
  }

  /** For GCE_METADATA_HOST. */
  get host(): string {
    return this.server.host;
  }

  get tokenCalls(): number {
    return this.server.callsTo('GET', TOKEN_PATH).length;
  }

  private handle(call: RecordedCall): FakeResponse {
    const flavor = { 'metadata-flavor': 'Google' };
    if (header(call, 'metadata-flavor') !== 'Google') {
      return {
        status: 403,
        headers: { ...flavor, 'content-type': 'text/html' },
        body: 'Missing Metadata-Flavor:Google header.',
      };
    }
    if (call.method === 'GET' && call.path === '/computeMetadata/v1/instance') {
      return { status: 200, headers: { ...flavor, 'content-type': 'application/text' }, body: '' };
    }
    if (call.method === 'GET' && call.path === TOKEN_PATH) {
      if (this.failWith)
        return { status: this.failWith.status, headers: { ...flavor }, body: this.failWith.body };
      const accessToken = `ya29.fake-metadata-${randomBytes(24).toString('hex')}`;
      this.issued.push(accessToken);
      return {
        status: 200,
        headers: flavor,
        body: {
          access_token: accessToken,
          expires_in: this.expiresInSeconds,
          token_type: 'Bearer',
        },
      };
    }
    return { status: 404, headers: { ...flavor, 'content-type': 'text/html' }, body: 'Not Found' };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';

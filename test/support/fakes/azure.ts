// Local stand-ins for Microsoft Entra ID (OpenID discovery and the v2.0 token endpoint, over
// HTTPS with the test CA: @azure/identity refuses plain HTTP), the Azure instance metadata
// service's managed identity endpoint, and ACR's /oauth2/exchange.
import { randomBytes } from 'node:crypto';
import {
  type FakeResponse,
  FakeServer,
  formOf,
  header,
  type RecordedCall,
  unsignedJwt,
} from './fake-server.ts';

export const ARM_RESOURCE = 'https://management.azure.com';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface EntraIssued {
  kind: 'client_secret' | 'client_assertion' | 'managed_identity';
  clientId: string;
  tenantId: string;
  accessToken: string;
}

/** A set of Entra access tokens the fakes handed out, shared so ACR can check what it gets. */
export class IssuedAadTokens {
  readonly #tokens = new Set<string>();

  add(token: string): void {
    this.#tokens.add(token);
  }

  has(token: string): boolean {
    return this.#tokens.has(token);
  }
}

/** An ARM access token: a JWT with the claims ACR and our code read (tid, exp). */
function armToken(tenantId: string, clientId: string, lifetimeSeconds: number): string {
  const now = Math.floor(Date.now() / 1000);
  return unsignedJwt({
    aud: ARM_RESOURCE,
    iss: `https://sts.windows.net/${tenantId}/`,
    tid: tenantId,
    appid: clientId,
    oid: randomBytes(16).toString('hex'),
    iat: now,
    nbf: now,
    exp: now + lifetimeSeconds,
  });
}

/** Entra ID for one or more tenants: client secrets and federated (workload identity) tokens. */
export class FakeEntraId {
  readonly server: FakeServer;
  readonly tokens: IssuedAadTokens;
  readonly issued: EntraIssued[] = [];
  /** clientId → the secret it accepts. */
  readonly clientSecrets = new Map<string, string>();
  /** clientId → the federated token (the projected service account token) it accepts. */
  readonly federatedTokens = new Map<string, string>();
  expiresInSeconds = 3599;
  failWith: { error: string; description: string; status?: number } | undefined;

  private constructor(server: FakeServer, tokens: IssuedAadTokens) {
    this.server = server;
    this.tokens = tokens;
  }

  static async start(tokens = new IssuedAadTokens()): Promise<FakeEntraId> {
    let fake: FakeEntraId | undefined;
    const server = await FakeServer.start((call) => (fake as FakeEntraId).handle(call), {
      tls: true,
    });
    fake = new FakeEntraId(server, tokens);
    return fake;
  }

  /** For `authorityHost` / AZURE_AUTHORITY_HOST. */
  get authorityHost(): string {
    return this.server.url;
  }

  get tokenCalls(): number {
    return this.server.callsTo('POST', /^\/[^/]+\/oauth2\/v2\.0\/token$/).length;
  }

  private handle(call: RecordedCall): FakeResponse {
    const discovery = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(call.path);
    if (call.method === 'GET' && discovery) return this.openidConfiguration(discovery[1] ?? '');
    if (call.method === 'GET' && call.path === '/common/discovery/instance') {
      return {
        status: 200,
        body: {
          tenant_discovery_endpoint: `${this.server.url}/common/v2.0/.well-known/openid-configuration`,
          'api-version': '1.1',
          metadata: [],
        },
      };
    }
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(call.path);
    if (call.method === 'POST' && token) return this.token(token[1] ?? '', formOf(call));
    return { status: 404, body: { error: 'not_found' } };
  }

  private openidConfiguration(tenant: string): FakeResponse {
    const base = `${this.server.url}/${tenant}`;
    return {
      status: 200,
      body: {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ['query', 'fragment', 'form_post'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        issuer: `${base}/v2.0`,
        request_uri_parameter_supported: false,
        userinfo_endpoint: `${this.server.url}/oidc/userinfo`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'tid'],
        kerberos_endpoint: `${base}/kerberos`,
        tenant_region_scope: 'EU',
        cloud_instance_name: 'microsoftonline.com',
        cloud_graph_host_name: 'graph.windows.net',
        msgraph_host: 'graph.microsoft.com',
        rbac_url: 'https://pas.windows.net',
      },
    };
  }

  private token(tenantId: string, form: URLSearchParams): FakeResponse {
    if (this.failWith)
      return entraError(
        this.failWith.status ?? 401,
        this.failWith.error,
        this.failWith.description,
      );
    if (form.get('grant_type') !== 'client_credentials') {
      return entraError(
        400,
        'unsupported_grant_type',
        'AADSTS70003: The app requested an unsupported grant type.',
      );
    }
    if (form.get('scope')?.split(' ').includes(`${ARM_RESOURCE}/.default`) !== true) {
      return entraError(
        400,
        'invalid_scope',
        "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
      );
    }
    const clientId = form.get('client_id') ?? '';
    let kind: EntraIssued['kind'];
    if (form.has('client_secret')) {
      const expected = this.clientSecrets.get(clientId);
      if (expected === undefined || form.get('client_secret') !== expected) {
        return entraError(401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.');
      }
      kind = 'client_secret';
    } else if (form.get('client_assertion_type') === CLIENT_ASSERTION_TYPE) {
      const expected = this.federatedTokens.get(clientId);
      if (expected === undefined || form.get('client_assertion') !== expected) {
        return entraError(
          401,
          'invalid_client',
          'AADSTS700211: No matching federated identity record found for presented assertion issuer.',
        );
      }
      kind = 'client_assertion';
    } else {
      return entraError(
        401,
        'invalid_client',
        'AADSTS7000218: The request body must contain client_assertion or client_secret.',
      );
    }
    const accessToken = armToken(tenantId, clientId, this.expiresInSeconds);
    this.tokens.add(accessToken);
    this.issued.push({ kind, clientId, tenantId, accessToken });
    return {
      status: 200,
      body: {
        token_type: 'Bearer',
        expires_in: this.expiresInSeconds,
        ext_expires_in: this.expiresInSeconds,
        access_token: accessToken,
      },
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function entraError(status: number, error: string, description: string): FakeResponse {
  return {
    status,
    body: {
      error,
      error_description: `${description}\r\nTrace ID: ${randomBytes(8).toString('hex')}\r\nCorrelation ID: ${randomBytes(8).toString('hex')}\r\nTimestamp: ${new Date().toISOString()}`,
      error_codes: [Number(/AADSTS(\d+)/.exec(description)?.[1] ?? 0)],
      timestamp: new Date().toISOString(),
      trace_id: randomBytes(8).toString('hex'),
      correlation_id: randomBytes(8).toString('hex'),
    },
  };
}

/** IMDS's managed identity endpoint (AZURE_POD_IDENTITY_AUTHORITY_HOST points MSAL here). */
export class FakeAzureImds {
  readonly server: FakeServer;
  readonly tokens: IssuedAadTokens;
  readonly issued: EntraIssued[] = [];
  tenantId = '11111111-2222-3333-4444-555555555555';
  expiresInSeconds = 3599;

  private constructor(server: FakeServer, tokens: IssuedAadTokens) {
    this.server = server;
    this.tokens = tokens;
  }

  static async start(tokens = new IssuedAadTokens()): Promise<FakeAzureImds> {
    let fake: FakeAzureImds | undefined;
    const server = await FakeServer.start((call) => (fake as FakeAzureImds).handle(call));
    fake = new FakeAzureImds(server, tokens);
    return fake;
  }

  get url(): string {
    return this.server.url;
  }

  get tokenCalls(): number {
    return this.server.callsTo('GET', /^\/metadata\/identity\/oauth2\/token\/?$/).length;
  }

  private handle(call: RecordedCall): FakeResponse {
    // MSAL asks for the path with a trailing slash; IMDS answers both.
    if (call.method !== 'GET' || call.path.replace(/\/$/, '') !== IMDS_TOKEN_PATH) {
      return { status: 404, body: { error: 'not_found' } };
    }
    if (header(call, 'metadata') !== 'true') {
      return {
        status: 400,
        body: {
          error: 'invalid_request',
          error_description: 'Required metadata header not specified',
        },
      };
    }
    const resource = call.query.get('resource');
    if (resource !== ARM_RESOURCE && resource !== `${ARM_RESOURCE}/`) {
      return {
        status: 400,
        body: { error: 'invalid_resource', error_description: 'AADSTS500011: resource not found' },
      };
    }
    const clientId = call.query.get('client_id') ?? 'system-assigned';
    const accessToken = armToken(this.tenantId, clientId, this.expiresInSeconds);
    this.tokens.add(accessToken);
    this.issued.push({ kind: 'managed_identity', clientId, tenantId: this.tenantId, accessToken });
    const now = Math.floor(Date.now() / 1000);
    return {
      status: 200,
      body: {
        access_token: accessToken,
        client_id: clientId,
        expires_in: String(this.expiresInSeconds),
        expires_on: String(now + this.expiresInSeconds),
        ext_expires_in: String(this.expiresInSeconds),
        not_before: String(now),
        resource: ARM_RESOURCE,
        token_type: 'Bearer',
      },
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

const IMDS_TOKEN_PATH = '/metadata/identity/oauth2/token';

export interface AcrIssued {
  service: string;
  tenant: string | undefined;
  refreshToken: string;
  expiresAt: Date;
}

/** ACR's /oauth2/exchange: an Entra access token in, an ACR refresh token (a JWT) out. */
export class FakeAcr {
  readonly server: FakeServer;
  readonly tokens: IssuedAadTokens;
  readonly issued: AcrIssued[] = [];
  /** The registry host the `service` field must name, e.g. myregistry.azurecr.io. */
  service: string;
  /** When set, the `tenant` field must equal it. */
  tenant: string | undefined;
  refreshTokenLifetimeMs = 3 * 60 * 60 * 1000;
  /** When set, every exchange fails; `echoToken` quotes the access token it got, as a careless
   * server might, to check that callers scrub it. */
  failWith: { status: number; code: string; message: string; echoToken?: boolean } | undefined;

  private constructor(server: FakeServer, tokens: IssuedAadTokens, service: string) {
    this.server = server;
    this.tokens = tokens;
    this.service = service;
  }

  static async start(tokens: IssuedAadTokens, service: string): Promise<FakeAcr> {
    let fake: FakeAcr | undefined;
    const server = await FakeServer.start((call) => (fake as FakeAcr).handle(call), { tls: true });
    fake = new FakeAcr(server, tokens, service);
    return fake;
  }

  get exchangeUrl(): string {
    return `${this.server.url}/oauth2/exchange`;
  }

  get exchangeCalls(): number {
    return this.server.callsTo('POST', '/oauth2/exchange').length;
  }

  private handle(call: RecordedCall): FakeResponse {
    if (call.method !== 'POST' || call.path !== '/oauth2/exchange')
      return { status: 404, body: { errors: [{ code: 'NOT_FOUND', message: 'not found' }] } };
    if (!header(call, 'content-type')?.startsWith('application/x-www-form-urlencoded')) {
      return acrError(400, 'UNSUPPORTED', 'expected a form');
    }
    const form = formOf(call);
    if (this.failWith) {
      const { status, code, message, echoToken } = this.failWith;
      return acrError(status, code, echoToken ? `${message} ${form.get('access_token')}` : message);
    }
    if (form.get('grant_type') !== 'access_token')
      return acrError(400, 'UNSUPPORTED', 'grant_type must be access_token');
    const service = form.get('service');
    if (service !== this.service)
      return acrError(400, 'INVALID_SERVICE', 'service does not name this registry');
    const tenant = form.get('tenant') ?? undefined;
    if (this.tenant !== undefined && tenant !== this.tenant)
      return acrError(400, 'INVALID_TENANT', 'tenant mismatch');
    const accessToken = form.get('access_token') ?? '';
    if (!this.tokens.has(accessToken))
      return acrError(401, 'UNAUTHORIZED', 'the access token is not valid');
    const expiresAt = new Date(
      Math.floor((Date.now() + this.refreshTokenLifetimeMs) / 1000) * 1000,
    );
    const refreshToken = unsignedJwt({
      jti: randomBytes(16).toString('hex'),
      sub: 'puller',
      nbf: Math.floor(Date.now() / 1000),
      exp: expiresAt.getTime() / 1000,
      iat: Math.floor(Date.now() / 1000),
      iss: 'Azure Container Registry',
      aud: service,
      version: '1.0',
      grant_type: 'refresh_token',
      tenant,
    });
    this.issued.push({ service, tenant, refreshToken, expiresAt });
    return { status: 200, body: { refresh_token: refreshToken } };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function acrError(status: number, code: string, message: string): FakeResponse {
  return { status, body: { errors: [{ code, message }] } };
}

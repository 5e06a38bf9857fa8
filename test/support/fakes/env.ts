// Environment variables set for one test and put back afterwards. The cloud SDKs read their
// default chains from process.env at call time, so a test points them at the fakes this way.
export type EnvVars = Record<string, string | undefined>;

export class EnvPatch {
  readonly #saved = new Map<string, string | undefined>();

  /** Sets (or, for undefined, deletes) each variable, remembering the first value seen. */
  set(vars: EnvVars): this {
    for (const [name, value] of Object.entries(vars)) {
      if (!this.#saved.has(name)) this.#saved.set(name, process.env[name]);
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    return this;
  }

  restore(): void {
    for (const [name, value] of this.#saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    this.#saved.clear();
  }
}

/** Every variable the AWS default chain reads, cleared, with files and IMDS out of reach. */
export const AWS_CLEAN_ENV: EnvVars = {
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined,
  AWS_DEFAULT_PROFILE: undefined,
  AWS_REGION: undefined,
  AWS_DEFAULT_REGION: undefined,
  AWS_ROLE_ARN: undefined,
  AWS_ROLE_SESSION_NAME: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
  AWS_CONTAINER_AUTHORIZATION_TOKEN: undefined,
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: undefined,
  AWS_ENDPOINT_URL: undefined,
  AWS_ENDPOINT_URL_ECR: undefined,
  AWS_ENDPOINT_URL_STS: undefined,
  AWS_CONFIG_FILE: '/nonexistent/regcred-test/aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/regcred-test/aws-credentials',
  AWS_EC2_METADATA_DISABLED: 'true',
};

/** Google's ADC inputs cleared; the metadata server must be pointed at a fake explicitly. */
export const GOOGLE_CLEAN_ENV: EnvVars = {
  GOOGLE_APPLICATION_CREDENTIALS: undefined,
  GOOGLE_CLOUD_PROJECT: undefined,
  GCLOUD_PROJECT: undefined,
  GCE_METADATA_HOST: undefined,
  GCE_METADATA_IP: undefined,
  METADATA_SERVER_DETECTION: undefined,
  CLOUDSDK_CONFIG: '/nonexistent/regcred-test/gcloud',
  HOME: '/nonexistent/regcred-test/home',
};

/** Azure identity inputs cleared. */
export const AZURE_CLEAN_ENV: EnvVars = {
  AZURE_TENANT_ID: undefined,
  AZURE_CLIENT_ID: undefined,
  AZURE_CLIENT_SECRET: undefined,
  AZURE_FEDERATED_TOKEN_FILE: undefined,
  AZURE_AUTHORITY_HOST: undefined,
  AZURE_POD_IDENTITY_AUTHORITY_HOST: undefined,
  IDENTITY_ENDPOINT: undefined,
  IDENTITY_HEADER: undefined,
  IDENTITY_SERVER_THUMBPRINT: undefined,
  IMDS_ENDPOINT: undefined,
  MSI_ENDPOINT: undefined,
  MSI_SECRET: undefined,
};

// A new webhook CA signs what is served only once the API server can trust it: the grace is
// counted from the caBundle actually published in the MutatingWebhookConfiguration, not from
// the Secret write (a configuration missing, or a PATCH failing, would otherwise leave the API
// server with a bundle that does not trust the served certificate: Pods unpatched or refused).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { KubeApiError, type KubeRest, type RestRequest } from '../../src/kube/rest.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { ServingCertificates } from '../../src/webhook/serving-certificates.ts';

const HOUR = 60 * 60 * 1000;
const t0 = Date.parse('2026-12-01T00:00:00Z');

function fakeApi() {
  let secret: V1Secret | undefined;
  let rv = 0;
  const state = {
    installed: false,
    caBundle: '',
  };
  const rest = {
    async send<T>(req: RestRequest): Promise<T> {
      if (req.path.includes('mutatingwebhookconfigurations')) {
        if (!state.installed) throw new KubeApiError(404, 'NotFound', 'not found');
        if (req.method === 'GET') {
          return {
            metadata: {},
            webhooks: [{ name: 'pods.regcred.dev', clientConfig: { caBundle: state.caBundle } }],
          } as T;
        }
        const ops = req.body as Array<{ op: string; value: string }>;
        for (const op of ops) if (op.op === 'add') state.caBundle = op.value;
        return {} as T;
      }
      if (req.method === 'GET') {
        if (!secret) throw new KubeApiError(404, 'NotFound', 'not found');
        return structuredClone(secret) as T;
      }
      const body = structuredClone(req.body as V1Secret);
      if (
        req.method === 'PUT' &&
        body.metadata?.resourceVersion !== secret?.metadata?.resourceVersion
      ) {
        throw new KubeApiError(409, 'Conflict', 'conflict');
      }
      body.metadata = { ...body.metadata, resourceVersion: String(++rv) };
      secret = body;
      return structuredClone(secret) as T;
    },
  } as unknown as KubeRest;
  return { rest, state, secret: () => secret };
}

describe('webhook CA rotation and the published caBundle', () => {
  it('serves nothing the new CA signed until a caBundle holding it was published, then after the grace', async function () {
    this.timeout(60_000);
    let now = t0;
    const api = fakeApi();
    let served = '';
    const certificates = new ServingCertificates({
      rest: api.rest,
      namespace: 'regcred-system',
      secretName: 'webhook-tls',
      webhookConfiguration: 'regcred-operator-pod-webhook',
      policy: {
        hosts: ['127.0.0.1'],
        caLifetimeMs: 300 * HOUR,
        certLifetimeMs: 30 * HOUR,
        publishGraceMs: HOUR,
      },
      log: silentLogger,
      onServing: (pair) => {
        served = pair.cert;
      },
      now: () => new Date(now),
    });
    const caOf = () => {
      const data = api.secret()?.data ?? {};
      return new X509Certificate(Buffer.from(data['ca.crt'] ?? '', 'base64').toString());
    };
    // The configuration is not installed (deleted, or not applied yet): nothing is published.
    await certificates.sync(true);
    const firstCa = caOf();
    for (let hour = 1; hour <= 200.5; hour += 0.5) {
      now = t0 + hour * HOUR;
      await certificates.sync(true);
    }
    const newCa = caOf();
    assert.notEqual(newCa.fingerprint256, firstCa.fingerprint256, 'the CA was renewed');
    // Well past the grace: still under the CA the API server knows, as long as a certificate
    // of it is valid (its key is not kept past the rotation: one expired is worse still).
    assert.ok(new X509Certificate(served).verify(firstCa.publicKey));
    let knownUntil = new X509Certificate(served).validToDate.getTime();
    for (let hour = 201; hour <= 215; hour += 0.5) {
      now = t0 + hour * HOUR;
      await certificates.sync(true);
      const cert = new X509Certificate(served);
      if (cert.verify(firstCa.publicKey)) knownUntil = cert.validToDate.getTime();
      else {
        assert.ok(
          now >= knownUntil,
          `hour ${hour}: served a certificate of a CA never published while one of the published CA was valid`,
        );
      }
    }
    assert.ok(knownUntil > t0 + 202 * HOUR);
    // Installed now: the bundle (both CAs) is published; the new CA signs after the grace.
    api.state.installed = true;
    now = t0 + 215.5 * HOUR;
    await certificates.sync(true);
    assert.match(
      Buffer.from(api.state.caBundle, 'base64').toString(),
      /BEGIN CERTIFICATE[\s\S]+BEGIN CERTIFICATE/,
    );
    for (let hour = 216; hour <= 240; hour += 0.5) {
      now = t0 + hour * HOUR;
      await certificates.sync(true);
    }
    assert.ok(new X509Certificate(served).verify(newCa.publicKey), 'switched to the published CA');
  });
});

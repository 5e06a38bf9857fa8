import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import {
  type CertificateState,
  planCertificates,
  type RotationPolicy,
  stateFromSecret,
} from '../../src/webhook/serving-certificates.ts';
import { createCertificateAuthority, issueServingCertificate } from '../../src/webhook/x509.ts';

const HOUR = 60 * 60 * 1000;
const policy: RotationPolicy = {
  hosts: ['regcred-operator-webhook.regcred-system.svc', '127.0.0.1', '::1'],
  caLifetimeMs: 300 * HOUR,
  certLifetimeMs: 30 * HOUR,
  publishGraceMs: HOUR,
};
const t0 = new Date('2026-12-01T00:00:00Z');
const at = (hours: number) => new Date(t0.getTime() + hours * HOUR);

function plan(state: CertificateState, now: Date): CertificateState {
  return planCertificates(state, policy, now) ?? assert.fail('expected a plan');
}

function issuer(state: CertificateState): X509Certificate {
  const served = new X509Certificate(state.serving?.cert ?? '');
  const match = state.bundle
    .map((pem) => new X509Certificate(pem))
    .find((ca) => served.checkIssued(ca));
  return match ?? assert.fail('the served certificate is not issued by any CA of the bundle');
}

describe('webhook certificates', () => {
  it('a CA and a serving certificate that node, OpenSSL and TLS accept, for every host', () => {
    for (let i = 0; i < 50; i++) {
      const ca = createCertificateAuthority('test CA', { notBefore: t0, notAfter: at(10) });
      const serving = issueServingCertificate(ca, policy.hosts, {
        notBefore: t0,
        notAfter: at(5),
      });
      const caCert = new X509Certificate(ca.cert);
      const cert = new X509Certificate(serving.cert);
      assert.ok(caCert.ca);
      assert.ok(!cert.ca);
      assert.ok(cert.checkIssued(caCert));
      assert.ok(cert.verify(caCert.publicKey));
      assert.equal(
        cert.checkHost('regcred-operator-webhook.regcred-system.svc'),
        'regcred-operator-webhook.regcred-system.svc',
      );
      assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
      assert.ok(cert.checkIP('::1'));
      assert.equal(cert.checkHost('other.example.com'), undefined);
      assert.equal(cert.validToDate.getTime(), at(5).getTime());
      assert.ok(!/^0/.test(cert.serialNumber) || cert.serialNumber.length % 2 === 0);
      createSecureContext({ cert: serving.cert, key: serving.key }); // the key matches
    }
  });

  it('dates from 2050 on are GeneralizedTime', () => {
    const ca = createCertificateAuthority('test CA', {
      notBefore: t0,
      notAfter: new Date('2060-01-01T00:00:00Z'),
    });
    assert.equal(
      new X509Certificate(ca.cert).validToDate.toISOString(),
      '2060-01-01T00:00:00.000Z',
    );
  });

  it('makes a CA and a serving certificate when there are none, and then nothing until renewal', () => {
    const first = plan({ bundle: [] }, t0);
    assert.equal(first.bundle.length, 1);
    assert.ok(issuer(first));
    assert.equal(planCertificates(first, policy, at(19)), undefined);
  });

  it('counts a lifetime of seconds from issue, not from the backdated notBefore', () => {
    const short = {
      ...policy,
      caLifetimeMs: 24_000,
      certLifetimeMs: 12_000,
      publishGraceMs: 2_000,
    };
    const first = planCertificates({ bundle: [] }, short, t0) ?? assert.fail('expected a plan');
    assert.equal(planCertificates(first, short, new Date(t0.getTime() + 7_000)), undefined);
    const renewed = planCertificates(first, short, new Date(t0.getTime() + 8_500));
    assert.ok(renewed && renewed.serving?.cert !== first.serving?.cert);
  });

  it('asks for no write at rest once its state went through the Secret and back', () => {
    const first = plan({ bundle: [] }, t0);
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    const secret = {
      metadata: { annotations: { 'regcred.dev/ca-published-at': t0.toISOString() } },
      data: {
        'ca.crt': b64(first.ca?.cert ?? ''),
        'ca.key': b64(first.ca?.key ?? ''),
        'tls.crt': b64(first.serving?.cert ?? ''),
        'tls.key': b64(first.serving?.key ?? ''),
        'ca-bundle.crt': b64(first.bundle.join('')),
      },
    };
    const read = stateFromSecret(secret);
    assert.deepEqual(read, first);
    assert.equal(planCertificates(read, policy, at(10)), undefined);
  });

  it('renews the serving certificate at two thirds of its lifetime under the same CA: the bundle stays', () => {
    const first = plan({ bundle: [] }, t0);
    const renewed = plan(first, at(20.1));
    assert.notEqual(renewed.serving?.cert, first.serving?.cert);
    assert.deepEqual(renewed.bundle, first.bundle);
    assert.equal(renewed.ca?.cert, first.ca?.cert);
  });

  it('reissues the serving certificate when the hosts change', () => {
    const first = plan({ bundle: [] }, t0);
    const next = planCertificates(first, { ...policy, hosts: ['other.svc'] }, at(1));
    assert.ok(next);
    assert.equal(new X509Certificate(next.serving?.cert ?? '').checkHost('other.svc'), 'other.svc');
  });

  it('rotates the CA without ever serving a certificate the published bundle does not trust', () => {
    let state = plan({ bundle: [] }, t0);
    let published = state.bundle; // what the API server trusts after each write
    const cas = new Set([state.ca?.cert]);
    for (let hour = 1; hour <= 700; hour += 0.5) {
      const next = planCertificates(state, policy, at(hour));
      if (!next) continue;
      // A write publishes the bundle and the serving pair at once; the API server may still
      // hold the previous bundle for a moment: what is served must be trusted by both.
      const servedIssuer = issuer(next);
      const trusted = (bundle: string[]) =>
        bundle.some(
          (pem) => new X509Certificate(pem).fingerprint256 === servedIssuer.fingerprint256,
        );
      assert.ok(trusted(next.bundle), `hour ${hour}: not in the new bundle`);
      assert.ok(trusted(published), `hour ${hour}: the previous bundle does not trust it`);
      assert.ok(new X509Certificate(next.serving?.cert ?? '').validToDate > at(hour));
      published = next.bundle;
      state = next;
      cas.add(state.ca?.cert);
      assert.ok(state.bundle.length <= 2);
    }
    // A 300 h CA renewed at two thirds: new CAs at 200 h, 400 h and 600 h.
    assert.equal(cas.size, 4);
  });
});

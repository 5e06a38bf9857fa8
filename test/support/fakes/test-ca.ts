// A throwaway CA and a server certificate for 127.0.0.1 / localhost, made at test time by the
// same code that makes the Pod webhook's certificates (src/webhook/x509.ts: node:crypto alone,
// no openssl binary, no npm package).
import { createCertificateAuthority, issueServingCertificate } from '../../../src/webhook/x509.ts';

export interface TestCertificates {
  /** PEM of the CA certificate: what a client passes as its trusted CA. */
  caCert: string;
  /** PEM certificate and PKCS#8 key for a server on 127.0.0.1, ::1 and localhost. */
  serverCert: string;
  serverKey: string;
}

let cached: TestCertificates | undefined;

/** One CA and server certificate per test process (generation takes a few milliseconds). */
export function testCertificates(): TestCertificates {
  cached ??= makeTestCertificates();
  return cached;
}

export function makeTestCertificates(now = new Date()): TestCertificates {
  const validity = {
    notBefore: new Date(now.getTime() - 60 * 60 * 1000),
    notAfter: new Date(now.getTime() + 7 * 24 * 60 * 60 * 1000),
  };
  const ca = createCertificateAuthority('regcred-operator test CA', validity);
  const server = issueServingCertificate(ca, ['127.0.0.1', '::1', 'localhost'], validity);
  return { caCert: ca.cert, serverCert: server.cert, serverKey: server.key };
}

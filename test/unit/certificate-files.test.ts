// Serving certificates from mounted files: the kubelet swaps a mounted Secret's files through a
// symlink, so a read may see the new certificate with the old key. Such a pair is never handed
// to the server (every handshake would fail); the previous one stays.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/observability/logger.ts';
import { CertificateFiles } from '../../src/webhook/certificate-files.ts';
import type { KeyAndCertificate } from '../../src/webhook/x509.ts';
import { makeTestCertificates } from '../support/fakes/test-ca.ts';

describe('webhook certificate files', () => {
  it('refuses a certificate and key that do not belong together, and keeps the pair it serves', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-certfiles-'));
    const one = makeTestCertificates();
    const two = makeTestCertificates();
    const served: KeyAndCertificate[] = [];
    try {
      await writeFile(join(dir, 'tls.crt'), one.serverCert);
      await writeFile(join(dir, 'tls.key'), two.serverKey);
      const files = new CertificateFiles(dir, silentLogger, (pair) => served.push(pair));
      await assert.rejects(files.start(60_000), /do not match|mismatch/);
      files.stop();
      assert.equal(served.length, 0);

      await writeFile(join(dir, 'tls.key'), one.serverKey);
      const again = new CertificateFiles(dir, silentLogger, (pair) => served.push(pair));
      await again.start(60_000);
      again.stop();
      assert.equal(served.length, 1);
      assert.equal(served[0]?.key, one.serverKey);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

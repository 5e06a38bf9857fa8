// Serving certificates from files (a mounted Secret that cert-manager or an administrator keeps):
// the operator makes none and leaves caBundle to whoever issues them (cert-manager's CA
// injector). A changed pair on disk is served from the next handshake on, without a restart.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.ts';
import type { KeyAndCertificate } from './x509.ts';

export class CertificateFiles {
  private readonly dir: string;
  private readonly log: Logger;
  private readonly onServing: (pair: KeyAndCertificate) => void;
  private timer?: NodeJS.Timeout;
  private served?: string;

  constructor(dir: string, log: Logger, onServing: (pair: KeyAndCertificate) => void) {
    this.dir = dir;
    this.log = log;
    this.onServing = onServing;
  }

  /** Reads the pair now (throws when it cannot), then every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    await this.load();
    this.timer = setInterval(() => {
      this.load().catch((error: unknown) => {
        // A kubelet update of a mounted Secret swaps a symlink: a read in between may fail.
        this.log.warn('webhook certificate files unreadable; serving the previous pair', {
          dir: this.dir,
          error: error instanceof Error ? error.message : String(error),
        });
      });
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async load(): Promise<void> {
    const [cert, key] = await Promise.all([
      readFile(join(this.dir, 'tls.crt'), 'utf8'),
      readFile(join(this.dir, 'tls.key'), 'utf8'),
    ]);
    if (cert === this.served) return;
    // Read apart, the two may straddle the kubelet's swap of the mounted files: a certificate
    // with another key would fail every handshake. Keep the previous pair until they match.
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
      throw new Error('tls.crt and tls.key do not match (files being replaced?)');
    }
    this.onServing({ cert, key });
    this.served = cert;
    this.log.info('webhook certificate loaded from files', { dir: this.dir });
  }
}

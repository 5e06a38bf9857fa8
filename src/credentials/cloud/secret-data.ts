// A cloud source's Secret as plain strings: `data` (base64) overlaid with `stringData`, as the
// API server would store them. Messages name the Secret and the key, never a value.
import type { V1Secret } from '@kubernetes/client-node';
import { decodeBase64Strict } from '../dockerconfigjson.ts';
import { CredentialError } from '../errors.ts';

export function decodeSecretData(secret: V1Secret): Record<string, string> {
  const where = `Secret ${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
  const out: Record<string, string> = {};
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  for (const [key, encoded] of Object.entries(secret.data ?? {})) {
    const bytes = decodeBase64Strict(encoded);
    if (bytes === null) {
      throw new CredentialError('SourceInvalid', `${where} key ${key} is not valid base64`);
    }
    try {
      out[key] = utf8.decode(bytes);
    } catch {
      throw new CredentialError('SourceInvalid', `${where} key ${key} is not valid UTF-8`);
    }
  }
  for (const [key, value] of Object.entries(secret.stringData ?? {})) out[key] = value;
  return out;
}

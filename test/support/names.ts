import { randomBytes } from 'node:crypto';

/** A DNS-1123 label unique to this test run: `<prefix>-<6 hex>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

// The webhook's CA and serving certificate, built with node:crypto alone (ADR 0011): node signs
// bytes and parses X.509 (X509Certificate) but does not build it, so the few DER structures an
// ECDSA P-256 certificate needs are encoded here. The output is checked by X509Certificate in
// the unit tests and by Go's verifier when the real kube-apiserver calls the webhook.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

export interface KeyAndCertificate {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
}

export interface IssueOptions {
  notBefore: Date;
  notAfter: Date;
}

/** A self-signed CA that may sign server certificates only (pathLen 0). */
export function createCertificateAuthority(commonName: string, o: IssueOptions): KeyAndCertificate {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyId = keyIdentifier(publicKey);
  const subject = name(commonName);
  const der = certificate({
    issuer: subject,
    subject,
    publicKey,
    signingKey: privateKey,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    extensions: [
      extension(OID.basicConstraints, true, seq(bool(true), integer(Buffer.from([0])))),
      extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)), // keyCertSign, cRLSign
      extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
    ],
  });
  return { cert: pem('CERTIFICATE', der), key: pkcs8(privateKey) };
}

/** A server certificate for `hosts` (DNS names and IP addresses), signed by `ca`. */
export function issueServingCertificate(
  ca: KeyAndCertificate,
  hosts: readonly string[],
  o: IssueOptions,
): KeyAndCertificate {
  if (hosts.length === 0) throw new Error('a serving certificate needs at least one host');
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caKey = createPrivateKey(ca.key);
  const caDer = derFromPem(ca.cert);
  const names = hosts.map((host) => {
    if (isIPv4(host)) return tlv(0x87, Buffer.from(host.split('.').map(Number)));
    if (isIPv6(host)) return tlv(0x87, ipv6Bytes(host));
    return tlv(0x82, Buffer.from(host, 'ascii'));
  });
  const der = certificate({
    issuer: subjectOf(caDer),
    subject: name(hosts[0] ?? ''),
    publicKey,
    signingKey: caKey,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    extensions: [
      extension(OID.basicConstraints, true, seq()),
      extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, seq(...names)),
      extension(
        OID.authorityKeyIdentifier,
        false,
        seq(tlv(0x80, keyIdentifier(createPublicKey(caKey)))),
      ),
    ],
  });
  return { cert: pem('CERTIFICATE', der), key: pkcs8(privateKey) };
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

interface CertificateParts {
  issuer: Buffer;
  subject: Buffer;
  publicKey: KeyObject;
  signingKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}

function certificate(parts: CertificateParts): Buffer {
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const serial = randomBytes(16);
  // Positive and minimal: DER refuses a leading 0x00 before a byte below 0x80 (Go and OpenSSL
  // reject such a serial), so the first byte is forced into 0x40..0x7f.
  serial[0] = ((serial[0] ?? 0) & 0x3f) | 0x40;
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    parts.issuer,
    seq(time(parts.notBefore), time(parts.notAfter)),
    parts.subject,
    parts.publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(...parts.extensions)),
  );
  const signature = sign('sha256', tbs, parts.signingKey); // DER ECDSA-Sig-Value
  return seq(tbs, algorithm, bitString(signature, 0));
}

function keyIdentifier(publicKey: KeyObject): Buffer {
  return createHash('sha1')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
}

function name(commonName: string): Buffer {
  return seq(tlv(0x31, seq(oid(OID.commonName), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

/** The subject Name of a DER certificate, byte for byte (the issuer of what it signs). */
function subjectOf(der: Buffer): Buffer {
  const cert = children(der)[0] ?? Buffer.alloc(0);
  const tbs = children(cert);
  // version [0], serial, signature algorithm, issuer, validity, subject
  const subject = tbs[5];
  if (!subject) throw new Error('the CA certificate has no subject');
  return subject;
}

/** The TLVs inside one constructed TLV. */
function children(tlvBytes: Buffer): Buffer[] {
  const { start, end } = header(tlvBytes, 0);
  const out: Buffer[] = [];
  let at = start;
  while (at < end) {
    const child = header(tlvBytes, at);
    out.push(tlvBytes.subarray(at, child.end));
    at = child.end;
  }
  return out;
}

function header(bytes: Buffer, at: number): { start: number; end: number } {
  const first = bytes[at + 1] ?? 0;
  if (first < 0x80) return { start: at + 2, end: at + 2 + first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (bytes[at + 2 + i] ?? 0);
  return { start: at + 2 + count, end: at + 2 + count + length };
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octetString(value)) : seq(oid(id), octetString(value));
}

function tlv(tag: number, content: Buffer): Buffer {
  const length = content.length;
  let head: Buffer;
  if (length < 0x80) {
    head = Buffer.from([tag, length]);
  } else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
    head = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([head, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function bool(value: boolean): Buffer {
  return tlv(0x01, Buffer.from([value ? 0xff : 0x00]));
}

function integer(bytes: Buffer): Buffer {
  return tlv(0x02, (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

function octetString(bytes: Buffer): Buffer {
  return tlv(0x04, bytes);
}

function bitString(bytes: Buffer, unusedBits: number): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const out: number[] = [first * 40 + second];
  for (const part of rest) {
    const groups: number[] = [];
    let n = part;
    do {
      groups.unshift(n & 0x7f);
      n = Math.floor(n / 128);
    } while (n > 0);
    for (let i = 0; i < groups.length - 1; i++) groups[i] = (groups[i] ?? 0) | 0x80;
    out.push(...groups);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. */
function time(date: Date): Buffer {
  const iso = new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString();
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : tlv(0x18, Buffer.from(digits, 'ascii'));
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail] = address.split('::');
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const groups = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => {
    out.writeUInt16BE(group, i * 2);
  });
  return out;
}

function pem(label: string, der: Buffer): string {
  const body = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd();
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

function derFromPem(text: string): Buffer {
  const body = text.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

function pkcs8(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

// A tiny image written by hand as an OCI image layout (image-spec's layout.md), so the suite
// pushes a real image without pulling one from anywhere: one gzipped layer holding a few files, a
// config, a manifest, index.json and oci-layout. With an executable (the static pause binary that
// scripts/provision.sh builds) it is an image a node runs: the app the Pods run, and the node's
// sandbox image, imported from a tar of the layout.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface OciImage {
  /** The layout's directory, for `oci:<dir>:<tag>`. */
  dir: string;
  tag: string;
  /** `sha256:…` of the manifest: what a registry serves as the image's digest. */
  manifestDigest: string;
  layerDigest: string;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const BLOCK = 512;

export interface ImageFile {
  name: string;
  content: Buffer;
  /** Permission bits; 0o644 unless given. */
  mode?: number;
}

/** A POSIX ustar archive with regular files only (all a small layer or a layout needs). */
export function tarArchive(files: ImageFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    const header = Buffer.alloc(BLOCK);
    const field = (offset: number, length: number, value: string) =>
      header.write(value.padEnd(length, '\0').slice(0, length), offset, length, 'ascii');
    const octal = (value: number, length: number) =>
      `${value.toString(8).padStart(length - 1, '0')}\0`;
    field(0, 100, file.name);
    field(100, 8, octal(file.mode ?? 0o644, 8));
    field(108, 8, octal(0, 8));
    field(116, 8, octal(0, 8));
    field(124, 12, octal(file.content.length, 12));
    field(136, 12, octal(0, 12));
    field(148, 8, ' '.repeat(8));
    field(156, 1, '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    const checksum = header.reduce((sum, byte) => sum + byte, 0);
    field(148, 8, `${checksum.toString(8).padStart(6, '0')}\0 `);
    parts.push(header, file.content, Buffer.alloc((BLOCK - (file.content.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Writes `blob` under blobs/sha256/ and returns its descriptor. */
async function writeBlob(dir: string, mediaType: string, blob: Buffer): Promise<Descriptor> {
  const digest = sha256(blob);
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), blob);
  return { mediaType, digest, size: blob.length };
}

/**
 * Writes a one-layer linux/amd64 image holding `file` (first, then `extra.files`) into `dir`,
 * tagged `tag`, running `extra.cmd`. `extra.name` (e.g. `regcred.local/pause:1`) is the name
 * `ctr images import` gives it.
 */
export async function writeOciImage(
  dir: string,
  tag: string,
  file: { name: string; content: string },
  extra: { files?: ImageFile[]; cmd?: string[]; name?: string } = {},
): Promise<OciImage> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const tar = tarArchive([
    { name: file.name, content: Buffer.from(file.content) },
    ...(extra.files ?? []),
  ]);
  const layer = await writeBlob(dir, 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(tar));
  const config = await writeBlob(
    dir,
    'application/vnd.oci.image.config.v1+json',
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: extra.cmd ?? ['/hello'] },
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
        history: [{ created_by: 'regcred-operator e2e suite' }],
      }),
    ),
  );
  const manifest = await writeBlob(
    dir,
    'application/vnd.oci.image.manifest.v1+json',
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config,
        layers: [layer],
      }),
    ),
  );
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          ...manifest,
          annotations: {
            'org.opencontainers.image.ref.name': tag,
            ...(extra.name ? { 'io.containerd.image.name': extra.name } : {}),
          },
        },
      ],
    }),
  );
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { dir, tag, manifestDigest: manifest.digest, layerDigest: layer.digest };
}

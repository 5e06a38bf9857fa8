// The kubelet's matching of an image to an auths key (kubelet-keyring.ts), remembered: a few
// microseconds each, for every container and credential of every Pod admitted (and every Pod
// the stuck-Pod check looks at). Images are tenants' strings, and mutating admission sees them
// before any validation (dry runs included): an image longer than any valid reference is not
// parsed at all (no match), each image is parsed at most once per call whatever the number of
// servers, and the memory is bounded by bytes, not only by entries.
import {
  MAX_IMAGE_REFERENCE_LENGTH,
  parseImageReference,
  repositoryMatchesServer,
} from '../credentials/kubelet-keyring.ts';
import type { Logger } from '../observability/logger.ts';
import type { ImageMatcher } from './pod-mutation.ts';

export interface ImageMatcherOptions {
  log?: Logger;
  /** Entries and bytes (UTF-16 key length plus a per-entry overhead) kept before starting over. */
  maxEntries?: number;
  maxBytes?: number;
  /** At most one warning about overlong images per this many ms. */
  warnEveryMs?: number;
  now?: () => number;
}

/** What a cached entry costs beyond its key (Map slot, boolean, string header), roughly. */
const ENTRY_OVERHEAD_BYTES = 64;

export interface MemoizedImageMatcher {
  matches: ImageMatcher;
  /** The bytes the cache holds now (as counted against maxBytes). */
  readonly bytes: number;
  readonly size: number;
  /** Images refused for their length since the start. */
  readonly refused: number;
}

export function memoizedImageMatcher(o: ImageMatcherOptions = {}): MemoizedImageMatcher {
  const maxEntries = o.maxEntries ?? 10_000;
  const maxBytes = o.maxBytes ?? 4 * 1024 * 1024;
  const warnEveryMs = o.warnEveryMs ?? 60_000;
  const now = o.now ?? Date.now;
  const matched = new Map<string, boolean>();
  let bytes = 0;
  let refused = 0;
  let lastWarning = Number.NEGATIVE_INFINITY;
  const remember = (key: string, hit: boolean) => {
    const cost = key.length * 2 + ENTRY_OVERHEAD_BYTES;
    if (matched.size >= maxEntries || bytes + cost > maxBytes) {
      matched.clear();
      bytes = 0;
    }
    matched.set(key, hit);
    bytes += cost;
  };
  const matches: ImageMatcher = (image, servers) => {
    if (image.length > MAX_IMAGE_REFERENCE_LENGTH) {
      refused += 1;
      if (now() - lastWarning >= warnEveryMs) {
        lastWarning = now();
        // Neither the image (a tenant's string, maybe megabytes) nor anything from it.
        o.log?.warn('image reference too long to be valid: matched to no registry', {
          length: image.length,
          limit: MAX_IMAGE_REFERENCE_LENGTH,
          refusedSoFar: refused,
        });
      }
      return false;
    }
    // Parsed lazily, once for all the servers not remembered.
    let repository: string | null | undefined;
    for (const server of servers) {
      const key = `${server}\u0000${image}`;
      let hit = matched.get(key);
      if (hit === undefined) {
        if (repository === undefined) {
          try {
            repository = parseImageReference(image).repository;
          } catch {
            repository = null;
          }
        }
        hit = repository !== null && repositoryMatchesServer(repository, server);
        remember(key, hit);
      }
      if (hit) return true;
    }
    return false;
  };
  return {
    matches,
    get bytes() {
      return bytes;
    },
    get size() {
      return matched.size;
    },
    get refused() {
      return refused;
    },
  };
}

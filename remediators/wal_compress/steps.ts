// The crash-safe compression of one segment, and the recovery of half-done work.
//
//   X  --gzip-->  X.gz.tmp  --fsync, verify (decompress: length + sha256 = X's)-->
//   chown/chmod  --rename-->  X.gz  --fsync dir, set mtime-->  unlink X  --fsync dir
//
// A kill -9 at any instant leaves X, or X.gz, or both, and every one of them complete:
// X is never touched until X.gz is durable and verified. Recovery looks only at what is on
// disk: X.gz.tmp is deleted (X is intact), and when X and X.gz both exist, X is unlinked only
// after X.gz verifies against it; a .gz that does not verify is moved aside, never trusted.
import { createHash } from "node:crypto";
import { closeSync, createReadStream, createWriteStream, fchmodSync, fchownSync, fsyncSync, lstatSync, openSync, renameSync, unlinkSync, utimesSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform, type TransformCallback } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";

export const TMP_SUFFIX = ".gz.tmp";

function fsyncPath(path: string, flags = "r"): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Counts and hashes what passes through; optionally throttles to a byte rate. */
class Meter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  private readonly started = performance.now();
  constructor(private readonly bytesPerSecond = 0) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.bytesPerSecond <= 0) return cb(null, chunk);
    const due = (this.bytes / this.bytesPerSecond) * 1000 - (performance.now() - this.started);
    if (due > 0) setTimeout(() => cb(null, chunk), due);
    else cb(null, chunk);
  }
}

/** sha256 and length of a file's bytes, or of its decompressed bytes. */
export async function digest(path: string, gunzip: boolean): Promise<{ bytes: number; sha256: string }> {
  const m = new Meter();
  const sink = new Transform({ transform: (_c, _e, cb) => cb() });
  if (gunzip) await pipeline(createReadStream(path), createGunzip(), m, sink);
  else await pipeline(createReadStream(path), m, sink);
  return { bytes: m.bytes, sha256: m.hash.digest("hex") };
}

/** Streams into `tmp` (created 0600); on any failure (ENOSPC, EIO...) no partial temporary is left. */
async function writeTemp(tmp: string, ...streams: Parameters<typeof pipeline>): Promise<void> {
  try {
    await pipeline(...streams, createWriteStream(tmp, { mode: 0o600 }));
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw e;
  }
}

/** Gives `tmp` the owner, group and mode of `like`, then makes its data durable. */
function adoptAndSync(tmp: string, like: { uid: number; gid: number; mode: number }): void {
  const fd = openSync(tmp, "r+");
  try {
    fchownSync(fd, like.uid, like.gid);
    fchmodSync(fd, like.mode & 0o7777);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class SegmentChanged extends Error {
  override readonly name = "SegmentChanged";
}

export interface CompressResult {
  readonly segment: string;
  readonly bytes: number;
  readonly compressedBytes: number;
  readonly sha256: string;
}

/** Step hook, so tests (and the journal) see each step; a crash test kills in between. */
export type StepHook = (step: "hashed" | "tmp_synced" | "verified" | "renamed" | "unlinked") => void;

export async function compressSegment(path: string, level: number, bytesPerSecond: number, onStep: StepHook = () => undefined): Promise<CompressResult> {
  const dir = dirname(path);
  const gz = `${path}.gz`;
  const tmp = `${path}${TMP_SUFFIX}`;
  const before = lstatSync(path);
  if (!before.isFile()) throw new Error(`${path} is not a regular file`);
  const meter = new Meter(bytesPerSecond);
  await writeTemp(tmp, createReadStream(path), meter, createGzip({ level })); // on failure X is untouched
  const original = { bytes: meter.bytes, sha256: meter.hash.digest("hex") };
  onStep("hashed");
  // The segment must not have changed while it was read (a writer we did not see).
  const after = lstatSync(path);
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.ino !== before.ino || original.bytes !== before.size) {
    unlinkSync(tmp);
    throw new SegmentChanged(`${basename(path)} changed while it was being compressed; left as it was`);
  }
  adoptAndSync(tmp, before);
  onStep("tmp_synced");
  const check = await digest(tmp, true);
  if (check.bytes !== original.bytes || check.sha256 !== original.sha256) {
    unlinkSync(tmp);
    throw new Error(`${basename(tmp)} does not decompress to ${basename(path)}; discarded`);
  }
  onStep("verified");
  renameSync(tmp, gz);
  utimesSync(gz, before.atime, before.mtime);
  fsyncPath(dir);
  onStep("renamed");
  unlinkSync(path);
  fsyncPath(dir);
  onStep("unlinked");
  return { segment: basename(path), bytes: original.bytes, compressedBytes: lstatSync(gz).size, sha256: original.sha256 };
}

export const RESTORE_SUFFIX = ".restore.tmp";

/**
 * The undo of a compression: X.gz back to X, with the same care. X.restore.tmp is written,
 * fsynced and checked to hash like the decompressed stream, renamed to X (owner, mode, mtime of
 * X.gz), the directory fsynced, and only then X.gz unlinked. A kill leaves X.gz, or both
 * (which recovery resolves by verification, keeping the bytes either way).
 */
export async function decompressSegment(gzPath: string): Promise<{ segment: string; bytes: number; sha256: string }> {
  if (!gzPath.endsWith(".gz")) throw new Error(`${gzPath} is not a .gz segment`);
  const plain = gzPath.slice(0, -3);
  const tmp = `${plain}${RESTORE_SUFFIX}`;
  const st = lstatSync(gzPath);
  if (!st.isFile()) throw new Error(`${gzPath} is not a regular file`);
  try {
    lstatSync(plain);
    throw new Error(`${basename(plain)} already exists; nothing to undo`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const meter = new Meter();
  await writeTemp(tmp, createReadStream(gzPath), createGunzip(), meter);
  const expected = meter.hash.digest("hex");
  adoptAndSync(tmp, st);
  const check = await digest(tmp, false);
  if (check.sha256 !== expected || check.bytes !== meter.bytes) {
    unlinkSync(tmp);
    throw new Error(`${basename(tmp)} does not match ${basename(gzPath)}; discarded`);
  }
  renameSync(tmp, plain);
  utimesSync(plain, st.atime, st.mtime);
  fsyncPath(dirname(plain));
  unlinkSync(gzPath);
  fsyncPath(dirname(plain));
  return { segment: basename(plain), bytes: check.bytes, sha256: check.sha256 };
}

export type RecoveryAction =
  | { readonly kind: "removed_tmp"; readonly file: string }
  | { readonly kind: "removed_plain_after_verify"; readonly file: string }
  | { readonly kind: "moved_aside_unverifiable_gz"; readonly file: string; readonly to: string };

/**
 * Resolves leftovers in `dir` for the segment names given (plain names): stray X.gz.tmp, and
 * X present both plain and compressed. Deterministic: the result depends only on the files.
 */
export async function recover(dir: string, plainNames: readonly string[], tmpNames: readonly string[]): Promise<RecoveryAction[]> {
  const out: RecoveryAction[] = [];
  for (const t of tmpNames) {
    unlinkSync(join(dir, t));
    out.push({ kind: "removed_tmp", file: t });
  }
  if (tmpNames.length > 0) fsyncPath(dir);
  for (const name of plainNames) {
    const plain = join(dir, name);
    const gz = `${plain}.gz`;
    let ok = false;
    try {
      const [a, b] = await Promise.all([digest(plain, false), digest(gz, true)]);
      ok = a.bytes === b.bytes && a.sha256 === b.sha256;
    } catch {
      ok = false;
    }
    if (ok) {
      unlinkSync(plain);
      fsyncPath(dir);
      out.push({ kind: "removed_plain_after_verify", file: name });
    } else {
      const to = `${gz}.unverified-${Date.now()}`;
      renameSync(gz, to);
      fsyncPath(dir);
      out.push({ kind: "moved_aside_unverifiable_gz", file: `${name}.gz`, to: basename(to) });
    }
  }
  return out;
}

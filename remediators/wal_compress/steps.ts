// The crash-safe compression of one segment, and the recovery of half-done work.
//
//   X --gzip--> X.gz.tmp (created O_EXCL) --fsync, verify (decompress: length + sha256 = X's)-->
//   fchown/fchmod/futimes --rename--> X.gz --fsync dir--> final checks --unlink X--> fsync dir
//
// A kill -9 at any instant leaves X, or X.gz, or both, and every one of them complete: X is
// never touched until X.gz is durable and verified. Recovery looks only at what is on disk:
// X.gz.tmp is deleted (X is intact), and when X and X.gz both exist, X is unlinked only after
// X.gz verifies against it; a .gz that does not verify is moved aside, never trusted.
//
// The directory belongs to the database's user (see core/safefs.ts): every name is reached
// through the directory's descriptor, X is read only if it is the regular, single-link file
// that was listed, temporaries are created exclusively, and owner, mode and times are set
// through descriptors. Right before X is unlinked it must still be the inode, size, mtime and
// ctime that were hashed, and no other process may hold it open. What remains: a writer that
// opens X between that check and the unlink (microseconds) and writes after the unlink writes
// into a file no name reaches. Appends that land before the agent closes X are caught by
// comparing X's descriptor after the unlink, and X is then put back whole.
import { createHash } from "node:crypto";
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  futimesSync,
  readSync,
  type Stats,
  writeSync,
} from "node:fs";
import { Readable, Transform, type TransformCallback, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { type DirHandle, type Identity, type Listed, sameFile } from "../../core/safefs.js";
import { holdersOf } from "./holders.js";
import { errorMessage } from "../../core/errors.js";

export const TMP_SUFFIX = ".gz.tmp";
export const RESTORE_SUFFIX = ".restore.tmp";
const CHUNK = 1024 * 1024;
/** Free space is looked at again after this many bytes written. */
const SPACE_CHECK_EVERY = 256 * 1024;

/** Errors a compression ends with that are not a fault of the agent or the disk. */
export type AbortCode =
  "SegmentChanged" | "NotTheListedFile" | "HeldOpen" | "HoldersUnknown" | "DirChanged";

class CodedError extends Error {
  constructor(
    readonly code: AbortCode | "Incompressible" | "NoSpace",
    message: string,
  ) {
    super(message);
    this.name = code;
  }
}

export class SegmentChanged extends CodedError {
  constructor(message: string) {
    super("SegmentChanged", message);
  }
}

/** The compressed form grew past max_ratio of the original: not worth the space. */
export class Incompressible extends CodedError {
  constructor(message: string) {
    super("Incompressible", message);
  }
}

/** Free space is short of what the work needs plus the reserve, or ran out while writing. */
export class NoSpace extends CodedError {
  constructor(message: string) {
    super("NoSpace", message);
  }
}

/** A reader of `length` bytes of an open file, by position (never past what was listed). */
function fdReader(fd: number, length: number): Readable {
  let pos = 0;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      const n = Math.min(CHUNK, length - pos);
      if (n <= 0) return void this.push(null);
      const buf = Buffer.allocUnsafe(n);
      let got: number;
      try {
        got = readSync(fd, buf, 0, n, pos);
      } catch (e) {
        return void this.destroy(e as Error);
      }
      if (got === 0) return void this.push(null); // shorter than listed: the caller sees the count
      pos += got;
      this.push(got === n ? buf : buf.subarray(0, got));
    },
  });
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

interface SinkLimits {
  /** The temporary may not grow past this many bytes. */
  readonly maxBytes: number;
  readonly tooBig: () => Error;
  /** Free space that must remain on the filesystem while writing. */
  readonly reserve: number;
  readonly dir: DirHandle;
}

/** Writes into an open file, stopping at a size limit or when free space reaches the reserve. */
class Sink extends Writable {
  written = 0;
  private sinceCheck = 0;
  constructor(
    private readonly fd: number,
    private readonly limits: SinkLimits,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      if (this.written + chunk.length > this.limits.maxBytes) throw this.limits.tooBig();
      this.sinceCheck += chunk.length;
      if (this.sinceCheck >= SPACE_CHECK_EVERY || this.written === 0) {
        this.sinceCheck = 0;
        const free = this.limits.dir.available();
        if (free - chunk.length < this.limits.reserve) {
          throw new NoSpace(
            `free space would fall under the reserve (${free} bytes free, reserve ${this.limits.reserve})`,
          );
        }
      }
      for (let off = 0; off < chunk.length;)
        off += writeSync(this.fd, chunk, off, chunk.length - off, this.written + off);
      this.written += chunk.length;
      cb();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      cb(
        err.code === "ENOSPC" || err.code === "EDQUOT"
          ? new NoSpace(`${err.code} while writing the temporary file`)
          : err,
      );
    }
  }
}

const discard = () => new Writable({ write: (_c, _e, cb) => cb() });

/** sha256 and length of an open file's bytes, or of its decompressed bytes. */
export async function digestFd(
  fd: number,
  gunzip: boolean,
): Promise<{ bytes: number; sha256: string }> {
  const m = new Meter();
  const src = fdReader(fd, fstatSync(fd).size);
  if (gunzip) await pipeline(src, createGunzip(), m, discard());
  else await pipeline(src, m, discard());
  return { bytes: m.bytes, sha256: m.hash.digest("hex") };
}

/** The same file, unchanged: inode, size, mtime and ctime. */
function unchanged(a: Stats, b: Stats): boolean {
  return sameFile(a, b) && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** The name still reaches the file we hold (`st`), or the step is abandoned. */
function expectAt(d: DirHandle, name: string, st: Identity, what: string): void {
  const now = d.lstat(name);
  if (!now || !sameFile(now, st))
    throw new SegmentChanged(`${name} is no longer ${what}; left alone`);
}

/** Removes our temporary, if the name still is ours. */
function dropTemp(d: DirHandle, name: string, st: Identity): void {
  try {
    const now = d.lstat(name);
    if (now && sameFile(now, st)) d.unlink(name);
  } catch {
    // best effort: recovery removes a stray temporary at the next start
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Owner, group and permission bits of `like` (never set-id bits), then durable. */
function adopt(fd: number, like: Stats): void {
  fchownSync(fd, like.uid, like.gid);
  fchmodSync(fd, like.mode & 0o777);
  fsyncSync(fd);
}

export interface CompressResult {
  readonly segment: string;
  readonly bytes: number;
  readonly compressedBytes: number;
  readonly sha256: string;
}

export type Step = "hashed" | "tmp_synced" | "verified" | "renamed" | "checked" | "unlinked";
/** Step hook, so the journal and tests see each step; the crash test kills after each one. */
export type StepHook = (step: Step) => void | Promise<void>;

export interface CompressOptions {
  readonly level: number;
  readonly bytesPerSecond: number;
  /** The temporary is abandoned once it is larger than this share of the original. */
  readonly maxRatio: number;
  /** Free bytes that must remain on the filesystem. */
  readonly reserve: number;
  /** Holders are looked up here; the agent's own process is never one. */
  readonly procPath?: string;
}

export async function compressSegment(
  d: DirHandle,
  name: string,
  listed: Listed,
  o: CompressOptions,
  onStep: StepHook = () => undefined,
): Promise<CompressResult> {
  const gz = `${name}.gz`;
  const tmpName = `${name}${TMP_SUFFIX}`;
  const free = d.available();
  if (free < listed.size + o.reserve) {
    throw new NoSpace(
      `${free} bytes free, ${name} needs ${listed.size} plus the reserve of ${o.reserve}`,
    );
  }
  const src = d.openListed(name, listed);
  let tmp: { fd: number; st: Stats } | null = null;
  let placed = false;
  try {
    tmp = d.createExclusive(tmpName);
    const meter = new Meter(o.bytesPerSecond);
    const maxBytes = Math.floor(listed.size * o.maxRatio);
    const tooBig = () =>
      new Incompressible(`${name} does not compress below ${o.maxRatio} of its size`);
    const sink = new Sink(tmp.fd, { maxBytes, tooBig, reserve: o.reserve, dir: d });
    await pipeline(fdReader(src.fd, listed.size), meter, createGzip({ level: o.level }), sink);
    const original = { bytes: meter.bytes, sha256: meter.hash.digest("hex") };
    // Every byte listed was read, and nothing wrote to the file meanwhile.
    const hashed = fstatSync(src.fd);
    if (original.bytes !== listed.size || !unchanged(hashed, src.st)) {
      throw new SegmentChanged(`${name} changed while it was being compressed; left as it was`);
    }
    await onStep("hashed");
    adopt(tmp.fd, src.st);
    await onStep("tmp_synced");
    const check = await digestFd(tmp.fd, true);
    if (check.bytes !== original.bytes || check.sha256 !== original.sha256) {
      throw new Error(`${tmpName} does not decompress to ${name}; discarded`);
    }
    await onStep("verified");
    futimesSync(tmp.fd, src.st.atime, src.st.mtime);
    fsyncSync(tmp.fd);
    expectAt(d, tmpName, tmp.st, "the temporary file the agent created");
    d.rename(tmpName, gz);
    placed = true;
    d.fsync();
    await onStep("renamed");
    // Last look before the original goes: the same file, unchanged since it was hashed, held by no one.
    const holders = holdersOf(src.st, process.pid, o.procPath);
    if (holders.length > 0)
      throw new CodedError("HeldOpen", `${name} is open in process ${holders.join(", ")}; kept`);
    const now = d.lstat(name);
    if (!now || !unchanged(now, hashed))
      throw new SegmentChanged(`${name} changed after it was hashed; kept`);
    expectAt(d, gz, tmp.st, "the compressed copy the agent wrote");
    await onStep("checked");
    d.unlink(name);
    d.fsync();
    // Anything appended between the last look and the unlink is still in our descriptor.
    const after = fstatSync(src.fd);
    if (after.size !== hashed.size || after.mtimeMs !== hashed.mtimeMs) {
      restoreFrom(d, name, src.fd, src.st);
      d.unlink(gz);
      d.fsync();
      throw new SegmentChanged(`${name} was written to while it was being removed; put back whole`);
    }
    await onStep("unlinked");
    return {
      segment: name,
      bytes: original.bytes,
      compressedBytes: fstatSync(tmp.fd).size,
      sha256: original.sha256,
    };
  } catch (e) {
    if (tmp && !placed) dropTemp(d, tmpName, tmp.st);
    if (tmp && placed && d.lstat(name)) dropTemp(d, gz, tmp.st); // the original stays: one form only
    throw e;
  } finally {
    closeQuietly(src.fd);
    if (tmp) closeQuietly(tmp.fd);
  }
}

/** Writes the whole of an open (unlinked) file back under its name, then makes it durable. */
function restoreFrom(d: DirHandle, name: string, fd: number, like: Stats): void {
  const out = d.createExclusive(name);
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; pos < size;) {
      const got = readSync(fd, buf, 0, Math.min(CHUNK, size - pos), pos);
      if (got === 0) break;
      for (let off = 0; off < got;) off += writeSync(out.fd, buf, off, got - off, pos + off);
      pos += got;
    }
    adopt(out.fd, like);
  } finally {
    closeSync(out.fd);
  }
  d.fsync();
}

/**
 * The undo of a compression: X.gz back to X, with the same care. X.restore.tmp is created
 * exclusively, written, fsynced and checked to hash like the decompressed stream, given the
 * owner, mode and mtime of X.gz, renamed to X, the directory fsynced, and only then X.gz
 * unlinked. A kill leaves X.gz, or both (which recovery resolves by verification).
 */
export async function decompressSegment(
  d: DirHandle,
  gzName: string,
  reserve: number,
): Promise<{ segment: string; bytes: number; sha256: string }> {
  if (!gzName.endsWith(".gz")) throw new Error(`${gzName} is not a .gz segment`);
  const plain = gzName.slice(0, -3);
  const tmpName = `${plain}${RESTORE_SUFFIX}`;
  const listed = d.lstat(gzName);
  if (!listed) throw new Error(`${gzName} does not exist`);
  if (d.lstat(plain)) throw new Error(`${plain} already exists; nothing to undo`);
  const src = d.openListed(gzName, listed);
  let tmp: { fd: number; st: Stats } | null = null;
  let placed = false;
  try {
    tmp = d.createExclusive(tmpName);
    const meter = new Meter();
    const tooBig = () => new NoSpace(`${gzName} decompresses to more than the filesystem can take`);
    const sink = new Sink(tmp.fd, { maxBytes: Number.MAX_SAFE_INTEGER, tooBig, reserve, dir: d });
    await pipeline(fdReader(src.fd, src.st.size), createGunzip(), meter, sink);
    const expected = meter.hash.digest("hex");
    adopt(tmp.fd, src.st);
    const check = await digestFd(tmp.fd, false);
    if (check.sha256 !== expected || check.bytes !== meter.bytes)
      throw new Error(`${tmpName} does not match ${gzName}; discarded`);
    futimesSync(tmp.fd, src.st.atime, src.st.mtime);
    fsyncSync(tmp.fd);
    expectAt(d, tmpName, tmp.st, "the temporary file the agent created");
    if (d.lstat(plain)) throw new Error(`${plain} appeared meanwhile; nothing undone`);
    d.rename(tmpName, plain);
    placed = true;
    d.fsync();
    const now = d.lstat(gzName);
    if (now && sameFile(now, src.st)) d.unlink(gzName);
    d.fsync();
    return { segment: plain, bytes: check.bytes, sha256: check.sha256 };
  } catch (e) {
    if (tmp && !placed) dropTemp(d, tmpName, tmp.st);
    throw e;
  } finally {
    closeQuietly(src.fd);
    if (tmp) closeQuietly(tmp.fd);
  }
}

export type RecoveryAction =
  | { readonly kind: "removed_tmp"; readonly file: string }
  | { readonly kind: "removed_plain_after_verify"; readonly file: string }
  | { readonly kind: "kept_both"; readonly file: string; readonly why: string }
  | { readonly kind: "moved_aside_unverifiable_gz"; readonly file: string; readonly to: string };

/** Digest of a name as it is now, only if it is a plain single-link file; null otherwise. */
export async function digestName(
  d: DirHandle,
  name: string,
  gunzip: boolean,
): Promise<{ st: Stats; bytes: number; sha256: string } | null> {
  const st = d.lstat(name);
  if (!st) return null;
  let f: { fd: number; st: Stats };
  try {
    f = d.openListed(name, st);
  } catch {
    return null;
  }
  try {
    return { st: f.st, ...(await digestFd(f.fd, gunzip)) };
  } catch {
    return null;
  } finally {
    closeSync(f.fd);
  }
}

/**
 * Resolves leftovers for the segment names given (plain names): stray temporaries, and X
 * present both plain and compressed. Deterministic: the result depends only on the files.
 */
export async function recover(
  d: DirHandle,
  plainNames: readonly string[],
  tmpNames: readonly string[],
  procPath?: string,
): Promise<RecoveryAction[]> {
  const out: RecoveryAction[] = [];
  for (const t of tmpNames) {
    if (d.unlinkIfPresent(t)) out.push({ kind: "removed_tmp", file: t });
  }
  if (tmpNames.length > 0) d.fsync();
  for (const name of plainNames) {
    const gz = `${name}.gz`;
    const [a, b] = [await digestName(d, name, false), await digestName(d, gz, true)];
    if (!a) {
      out.push({
        kind: "kept_both",
        file: name,
        why: "the plain copy is not a regular single-link file",
      });
    } else if (b && a.bytes === b.bytes && a.sha256 === b.sha256) {
      let holders: number[];
      try {
        holders = holdersOf(a.st, process.pid, procPath);
      } catch (e) {
        out.push({ kind: "kept_both", file: name, why: errorMessage(e) });
        continue;
      }
      const now = d.lstat(name);
      if (holders.length > 0 || !now || !unchanged(now, a.st)) {
        out.push({
          kind: "kept_both",
          file: name,
          why: holders.length > 0 ? "open in a process" : "changed while verified",
        });
        continue;
      }
      d.unlink(name);
      d.fsync();
      out.push({ kind: "removed_plain_after_verify", file: name });
    } else if (d.lstat(gz)) {
      const to = `${gz}.unverified-${Date.now()}`;
      d.rename(gz, to);
      d.fsync();
      out.push({ kind: "moved_aside_unverifiable_gz", file: gz, to });
    }
  }
  return out;
}

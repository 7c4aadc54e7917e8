// The bundle's tar.gz: tar-stream writes the entries, node:zlib compresses, and the size cap
// holds whatever gzip achieves, because contents are counted before compression (headers,
// padding, the MANIFEST and gzip's worst case reserved up front).
import { closeSync, constants, fchmodSync, openSync, unlinkSync } from "node:fs";
import { createWriteStream, type WriteStream } from "node:fs";
import { finished } from "node:stream/promises";
import { createGzip, type Gzip } from "node:zlib";
import tar from "tar-stream";

/** Kept for the MANIFEST, written last: it lists every item, so its size is bounded per line. */
export const MANIFEST_RESERVE = 64 * 1024;
/** A tar header (512), a PAX header pair for a long name (1024) and the padding (< 512). */
const ENTRY_OVERHEAD = 2048;
/** The end-of-archive blocks, gzip's header and trailer. */
const FIXED_OVERHEAD = 1024 + 64;

/** What keeping at most `limit` bytes did to one item. */
export interface Cut {
  readonly data: Buffer;
  /** The size before cutting; null when it was not cut. */
  readonly from: number | null;
}

/**
 * At most `limit` bytes of `data`: the beginning ("head") or, for logs, the end ("tail"), at a
 * line boundary when one is near, with a line saying what was cut.
 */
export function cutTo(data: Buffer, limit: number, keep: "head" | "tail"): Cut {
  if (data.length <= limit) return { data, from: null };
  const note = Buffer.from(
    `[agentctl bundle: cut to ${limit} of ${data.length} bytes, ` +
      `${keep === "tail" ? "newest kept" : "beginning kept"}]\n`,
  );
  const room = Math.max(0, limit - note.length);
  if (keep === "head") {
    let body = data.subarray(0, room);
    const nl = body.lastIndexOf(0x0a);
    if (nl >= 0 && body.length - nl < 4096) body = body.subarray(0, nl + 1);
    return { data: Buffer.concat([body, note]).subarray(0, limit), from: data.length };
  }
  let body = data.subarray(data.length - room);
  const nl = body.indexOf(0x0a);
  if (nl >= 0 && nl < 4096) body = body.subarray(nl + 1);
  return { data: Buffer.concat([note, body]).subarray(0, limit), from: data.length };
}

export class BundleArchive {
  private readonly pack = tar.pack();
  private readonly gzip: Gzip;
  private readonly out: WriteStream;
  private readonly done: Promise<void>;
  private content = 0;
  private entries = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    fd: number,
    readonly maxBytes: number,
    /** The directory every entry is under, so extracting makes one directory. */
    readonly top: string,
    private readonly mtime: Date,
  ) {
    this.gzip = createGzip({ level: 6 });
    this.out = createWriteStream("", { fd, autoClose: true });
    this.pack.pipe(this.gzip).pipe(this.out);
    this.done = finished(this.out);
    // Errors surface through `done`; without listeners they would be thrown as unhandled.
    const ignore = () => undefined;
    this.pack.on("error", ignore);
    this.gzip.on("error", ignore);
    this.out.on("error", ignore);
  }

  /**
   * Creates `path` 0600, exclusively and without following a symlink (a world-writable /var/tmp
   * may hold anyone's name): an existing file is never overwritten.
   */
  static create(path: string, maxBytes: number, top: string, now = new Date()): BundleArchive {
    const fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      fchmodSync(fd, 0o600); // whatever the umask left
    } catch (e) {
      closeSync(fd);
      unlinkSync(path);
      throw e;
    }
    return new BundleArchive(path, fd, maxBytes, top, now);
  }

  /** Content bytes the next entry may still have. */
  room(): number {
    const overhead =
      MANIFEST_RESERVE +
      FIXED_OVERHEAD +
      (this.entries + 2) * ENTRY_OVERHEAD + // this entry and the MANIFEST
      Math.ceil(this.content / 1000); // deflate's worst case on incompressible data
    return Math.max(0, this.maxBytes - overhead - this.content);
  }

  /** Adds one file, cut to `limit` and to the room left. */
  async add(
    name: string,
    data: Buffer | string,
    limit: number,
    keep: "head" | "tail",
  ): Promise<Cut> {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    const cut = cutTo(buf, Math.max(0, Math.min(limit, this.room())), keep);
    await this.write(name, cut.data);
    return cut;
  }

  /** The MANIFEST, last, then the end of the archive; resolves when the file is complete. */
  async close(manifest: string): Promise<void> {
    await this.write("MANIFEST.txt", cutTo(Buffer.from(manifest), MANIFEST_RESERVE, "head").data);
    this.closed = true;
    this.pack.finalize();
    await this.done;
  }

  /** Stops writing and removes the unfinished file. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.pack.destroy();
      this.out.destroy();
      await this.done.catch(() => undefined);
    }
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  private write(name: string, data: Buffer): Promise<void> {
    this.entries++;
    this.content += data.length;
    return new Promise((resolve, reject) => {
      this.pack.entry(
        { name: `${this.top}/${name}`, size: data.length, mode: 0o600, mtime: this.mtime },
        data,
        (e) => (e ? reject(e) : resolve()),
      );
    });
  }
}

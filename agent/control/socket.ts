// Creating the control socket: a unix socket with mode 0660, group-owned by the agent's group,
// replacing a stale socket file but never a live agent's.
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname } from "node:path";
import type { Server } from "node:http";
import { errorCode } from "../../core/errors.js";

/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

/** Pending connections the kernel queues (capped by net.core.somaxconn, 4096 since Linux 5.4). */
const LISTEN_BACKLOG = 4096;

export class SocketInUse extends Error {}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Numeric gid of a group from /etc/group, or undefined. */
export function groupId(name: string, groupFile = "/etc/group"): number | undefined {
  try {
    for (const line of readFileSync(groupFile, "utf8").split("\n")) {
      const [n, , gid] = line.split(":");
      if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
  } catch {
    // no group database: leave ownership as is
  }
  return undefined;
}

/** Listens on `path`; returns whether the group could be applied. Throws with a reason otherwise. */
export async function listenUnix(
  server: Server,
  path: string,
  group: string,
  mode = 0o660,
): Promise<{ groupApplied: boolean }> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH)
    throw new Error(`socket path is longer than ${MAX_SOCKET_PATH} bytes: ${path}`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if (errorCode(e) !== "ENOENT") throw e;
  }
  if (st) {
    if (!st.isSocket())
      throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    if (await isLive(path)) throw new SocketInUse(`another agent is already answering on ${path}`);
    unlinkSync(path); // stale, from a crash
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // Node's backlog is 511: a local client that connects while the loop is busy past that many
    // waiting connections gets EAGAIN at once (a Unix socket does not retry like TCP's SYN).
    server.listen({ path, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(path, mode);
  if ((mode & 0o070) === 0) return { groupApplied: true }; // no group access wanted
  const gid = groupId(group);
  if (gid === undefined) return { groupApplied: false };
  try {
    chownSync(path, -1, gid);
    return { groupApplied: true };
  } catch {
    return { groupApplied: false };
  }
}

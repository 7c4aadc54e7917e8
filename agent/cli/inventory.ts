// The bundle's host inventory, from systeminformation. Loaded only by `agentctl bundle` (a dynamic
// import, kept out of agentctl.cjs by esbuild's --external), never by the agent.
//
// Not called: si.diskLayout(), which on Linux runs `smartctl -a -j` on every disk without
// `-n standby` (lib/filesystem.js): it would wake a sleeping disk and can hang on a failing one.
// The disks come from si.blockDevices() (lsblk) instead, and SMART from the agent's own last run.
// Nor si.fsSize(): it runs df without a timeout (the bundle runs df itself, bounded).

/** Each part on its own: a part that fails or hangs is reported, the others are kept. */
const PART_TIMEOUT_MS = 20_000;

export async function hostInventory(): Promise<Record<string, unknown>> {
  // A CommonJS package: its functions are on the default export when imported from ESM.
  const si = (await import("systeminformation")).default;
  const parts: Record<string, () => Promise<unknown>> = {
    system: () => si.system(),
    bios: () => si.bios(),
    baseboard: () => si.baseboard(),
    os: () => si.osInfo(),
    cpu: () => si.cpu(),
    memory: () => si.mem(),
    memory_layout: () => si.memLayout(),
    block_devices: () => si.blockDevices(),
  };
  const out: Record<string, unknown> = { systeminformation: si.version() };
  const problems: Record<string, string> = {};
  await Promise.all(
    Object.entries(parts).map(async ([name, get]) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        out[name] = await Promise.race([
          get(),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer within ${PART_TIMEOUT_MS / 1000} s`)),
              PART_TIMEOUT_MS,
            );
          }),
        ]);
      } catch (e) {
        problems[name] = e instanceof Error ? e.message : String(e);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  if (Object.keys(problems).length > 0) out["problems"] = problems;
  return out;
}

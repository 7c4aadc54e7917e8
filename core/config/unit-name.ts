// systemd unit names as the agent accepts them: systemd's own rules (src/basic/unit-name.c,
// unit_name_is_valid) plus "no leading '-'". A name is handed to systemctl and systemd-run, so a
// name that looks like an option ("-Hroot@host.service" is systemctl's --host) must never get
// that far; every command line also puts unit names after "--" (defence in depth). Pure.

/** UNIT_NAME_MAX is 256 with the terminating NUL. */
export const UNIT_NAME_MAX = 255;

/** Every unit type systemd 252 knows (unit_type_table). */
export const UNIT_TYPES = [
  "service",
  "mount",
  "swap",
  "socket",
  "target",
  "device",
  "automount",
  "timer",
  "path",
  "slice",
  "scope",
] as const;

/** Why `name` is not a usable unit name of one of `types`, or null when it is. */
export function unitNameProblem(
  name: string,
  types: readonly string[] = UNIT_TYPES,
): string | null {
  if (name === "") return "is empty";
  if (name.length > UNIT_NAME_MAX) return `is longer than ${UNIT_NAME_MAX} characters`;
  // systemd allows it ("-.mount"), but on a command line it reads as an option.
  if (name.startsWith("-")) return "starts with '-' (it would be read as an option)";
  const dot = name.lastIndexOf(".");
  const suffix = dot > 0 ? name.slice(dot + 1) : "";
  if (!types.includes(suffix)) return `must end in .${types.join(" or .")}`;
  const prefix = name.slice(0, dot);
  const bad = /[^A-Za-z0-9:_.\\@-]/.exec(prefix);
  if (bad)
    return `contains ${JSON.stringify(bad[0])}: allowed are letters, digits and : _ . \\ - @`;
  const at = prefix.indexOf("@");
  if (at === 0) return "starts with '@'";
  if (at === prefix.length - 1)
    return "is a template (nothing after '@'): name an instance, e.g. x@1.service";
  return null;
}

/** Checked names only; throws with the same message. */
export function checkedUnitName(name: string, types?: readonly string[]): string {
  const p = unitNameProblem(name, types);
  if (p !== null) throw new Error(`invalid unit name ${JSON.stringify(name)}: ${p}`);
  return name;
}

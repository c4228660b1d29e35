// Command-line flags of the benches: `--name <positive number>`.
/** The number after `flag` in `argv`, or `dflt` when the flag is absent; anything but a positive number is refused. */
export function numFlag(argv: string[], flag: string, dflt: number): number {
  const at = argv.indexOf(flag);
  if (at < 0) return dflt;
  const v = Number(argv[at + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} takes a positive number`);
  return v;
}

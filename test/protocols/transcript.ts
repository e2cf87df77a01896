/**
 * Role transcripts for the protocol tests: feed a role its inputs one by one
 * and keep, per step, the effects it asked for as short strings (`show`), so
 * a test reads as the conversation it checks.
 */
export function transcript<St, In, Fx>(
  role: { start(): St; step(st: St, i: In): { st: St; effects: Fx[] } },
  inputs: In[],
  show: (e: Fx) => string,
): { lines: string[][]; st: St } {
  let st = role.start();
  const lines: string[][] = [];
  for (const input of inputs) {
    const out = role.step(st, input);
    st = out.st;
    lines.push(out.effects.map(show));
  }
  return { lines, st };
}

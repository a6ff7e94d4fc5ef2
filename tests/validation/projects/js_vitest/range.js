/** The integers from `start` up to, not including, `stop`, `step` apart. */
export function range(start, stop, step = 1) {
  if (step === 0) throw new RangeError("step must not be 0");
  const out = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

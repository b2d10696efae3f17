export const round = (x: number) => Math.round(x * 100) / 100;

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** p50 / p99 / max of a list of milliseconds, rounded. */
export function summary(values: number[]) {
  return { n: values.length, p50: round(percentile(values, 50)), p99: round(percentile(values, 99)), max: round(Math.max(...values)) };
}

/**
 * Milliseconds for a fixed piece of single-threaded JavaScript (the median of 5): shows a slow CPU,
 * not a host that is slow to give its two cores to busy processes (see DEVELOPERS.md, Benchmarks).
 */
export function hostSpeedMs(): number {
  const times: number[] = [];
  let sink = 0;
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    for (let i = 0; i < 3e6; i++) sink = (sink + i * i) % 1_000_003;
    times.push(performance.now() - t0);
  }
  if (sink < 0) throw new Error('unreachable'); // keeps the loop from being optimised away
  return round(percentile(times, 50));
}

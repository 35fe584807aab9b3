/**
 * Quantiles of a Prometheus histogram, computed as PromQL's `histogram_quantile` does (linear
 * interpolation inside the bucket that holds the rank), and the text-format parsing that takes a
 * histogram off a `/metrics` page.
 */

/** One bucket: observations at most `le`, cumulative as Prometheus exposes them. */
export interface Bucket {
  readonly le: number
  readonly count: number
}

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Histogram {
  /** The series' labels, `le` aside. */
  readonly labels: Readonly<Record<string, string>>
  readonly buckets: ReadonlyArray<Bucket>
  readonly count: number
  readonly sum: number
}

/**
 * The q-quantile of a histogram, like `histogram_quantile(q, …)`: NaN without observations or
 * without a `+Inf` bucket; a rank in the `+Inf` bucket gives the highest finite bound; the first
 * bucket starts at 0 (unless its bound is not positive); counts that dip (a scrape taken mid-update)
 * are held monotonic.
 */
export const histogramQuantile = (q: number, buckets: ReadonlyArray<Bucket>): number => {
  if (Number.isNaN(q)) return NaN
  if (q < 0) return -Infinity
  if (q > 1) return Infinity
  const sorted = [...buckets].sort((a, b) => a.le - b.le)
  if (sorted.length < 2 || sorted[sorted.length - 1]!.le !== Infinity) return NaN
  const counts: Array<number> = []
  for (const bucket of sorted) counts.push(Math.max(bucket.count, counts[counts.length - 1] ?? 0))
  const total = counts[counts.length - 1]!
  if (total === 0) return NaN
  let rank = q * total
  // The first bucket whose count reaches the rank, among all but +Inf.
  let b = counts.findIndex((count, i) => i < counts.length - 1 && count >= rank)
  if (b === -1) b = counts.length - 1
  if (b === counts.length - 1) return sorted[counts.length - 2]!.le
  if (b === 0 && sorted[0]!.le <= 0) return sorted[0]!.le
  let start = 0
  let inBucket = counts[b]!
  if (b > 0) {
    start = sorted[b - 1]!.le
    inBucket -= counts[b - 1]!
    rank -= counts[b - 1]!
  }
  return start + (sorted[b]!.le - start) * (rank / inBucket)
}

const parseValue = (text: string): number =>
  text === "+Inf" ? Infinity : text === "-Inf" ? -Infinity : text === "NaN" ? NaN : Number(text)

const unescape = (text: string): string => text.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c))

// name, optional {labels}, value, optional timestamp.
const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy

/** The samples of a Prometheus text exposition (format 0.0.4); comments and blank lines are skipped. */
export const parseExposition = (text: string): ReadonlyArray<Sample> => {
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue
    const match = sampleLine.exec(line)
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    const labelText = match[2] ?? ""
    labelPair.lastIndex = 0
    let consumed = 0
    for (let pair = labelPair.exec(labelText); pair !== null; pair = labelPair.exec(labelText)) {
      labels[pair[1]!] = unescape(pair[2]!)
      consumed = labelPair.lastIndex
    }
    if (consumed !== labelText.length) throw new Error(`malformed labels in: ${line}`)
    const value = parseValue(match[3]!)
    if (Number.isNaN(value) && match[3] !== "NaN") throw new Error(`not a Prometheus sample value: ${line}`)
    samples.push({ name: match[1]!, labels, value })
  }
  return samples
}

const seriesKey = (labels: Readonly<Record<string, string>>): string =>
  JSON.stringify(Object.entries(labels).filter(([name]) => name !== "le").sort(([a], [b]) => (a < b ? -1 : 1)))

/** Every series of histogram `name` (one per label set other than `le`). */
export const histograms = (samples: ReadonlyArray<Sample>, name: string): ReadonlyArray<Histogram> => {
  const series = new Map<
    string,
    { labels: Record<string, string>; buckets: Array<Bucket>; count: number; sum: number }
  >()
  const of = (labels: Readonly<Record<string, string>>) => {
    const key = seriesKey(labels)
    let found = series.get(key)
    if (found === undefined) {
      const { le: _le, ...rest } = labels
      found = { labels: rest, buckets: [], count: 0, sum: 0 }
      series.set(key, found)
    }
    return found
  }
  for (const sample of samples) {
    if (sample.name === `${name}_bucket` && sample.labels.le !== undefined) {
      of(sample.labels).buckets.push({ le: parseValue(sample.labels.le), count: sample.value })
    } else if (sample.name === `${name}_count`) of(sample.labels).count = sample.value
    else if (sample.name === `${name}_sum`) of(sample.labels).sum = sample.value
  }
  return [...series.values()]
}

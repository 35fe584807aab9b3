import { describe, expect, it } from "vitest"
import { clickhouseBatchCost } from "../../scripts/bench/report.ts"

describe("clickhouseBatchCost", () => {
  it("splits CPU per batch into a fixed part and a part per record, through the two runs", () => {
    // 150 ms per batch + 0.1 ms per record: 4 batches of 5,000 and 40 batches of 500.
    const large = { records: 20_000, batches: 4, cpuSeconds: 4 * (0.15 + 5_000 * 0.0001) }
    const small = { records: 20_000, batches: 40, cpuSeconds: 40 * (0.15 + 500 * 0.0001) }
    const cost = clickhouseBatchCost(large, small)
    expect(cost.fixedMsPerBatch).toBeCloseTo(150, 9)
    expect(cost.microsPerRecord).toBeCloseTo(100, 9)
  })

  it("takes a short last batch into the mean batch size", () => {
    // 10,200 records in batches of 5,000: two full and one of 200, 3 batches of 3,400 on average.
    const large = { records: 10_200, batches: 3, cpuSeconds: 3 * 0.15 + 10_200 * 0.0001 }
    const small = { records: 1_000, batches: 2, cpuSeconds: 2 * 0.15 + 1_000 * 0.0001 }
    const cost = clickhouseBatchCost(large, small)
    expect(cost.fixedMsPerBatch).toBeCloseTo(150, 9)
    expect(cost.microsPerRecord).toBeCloseTo(100, 9)
  })
})

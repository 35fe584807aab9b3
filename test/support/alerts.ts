/** Alerts written straight through the AlertWriter, as the daemon writes them, for outbox tests. */
import { Effect, Schema } from "effect"
import { DetectionResult } from "../../src/contract/DetectionResult.ts"
import { detectionResult, seededRng } from "../../src/produce/DetectorOutput.ts"
import { AlertWriter } from "../../src/sinks/postgres/AlertWriter.ts"

/** Alerts number `from` … `from + count - 1`, in one batch, their outbox rows carrying `traceparent`. */
export const writeAlerts = (from: number, count: number, traceparent?: string) =>
  Effect.flatMap(AlertWriter, (writer) =>
    writer.write({
      alerts: Array.from({ length: count }, (_, i) => {
        const n = from + i
        const wire = detectionResult(seededRng(n), n, { alertShare: 1 })
        return {
          result: Schema.decodeSync(DetectionResult)(wire),
          source: {
            topic: "fraud-detection-results",
            partition: 0,
            offset: String(n),
            timestamp: Date.now(),
            key: wire.transaction.user_id,
            headers: {},
            value: Buffer.from(JSON.stringify(wire))
          }
        }
      }),
      audits: [],
      deadLetters: [],
      ...(traceparent === undefined ? {} : { traceparent })
    }))

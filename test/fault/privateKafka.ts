/**
 * A Kafka broker of the fault test's own (the stack's broker serves every test file at once, so it
 * must never be restarted): the stack's own start-up code, on its own data folder and ports.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { type KafkaInstance, startKafka } from "../../scripts/stack/kafka.ts"
import { forgetStarted, readStarted, stopProcess } from "../../scripts/stack/process.ts"
import { projectRoot, uniqueName } from "../support/services.ts"

export interface PrivateKafka {
  readonly brokers: string
  /** The SASL_PLAINTEXT and SASL_SSL listeners, when asked for with `sasl`. */
  readonly saslBrokers: string | undefined
  readonly saslSslBrokers: string | undefined
  /** Stops the broker (SIGTERM, as an orchestrator would) and starts it again on the same ports. */
  readonly restart: () => Promise<void>
  readonly remove: () => Promise<void>
}

export const privateKafka = async (sasl?: KafkaInstance["sasl"]): Promise<PrivateKafka> => {
  const name = uniqueName("test-kafka")
  const instance: KafkaInstance = {
    name,
    dataDir: path.join(projectRoot, ".sentinel", "data", name),
    ...(sasl === undefined ? {} : { sasl })
  }
  const quiet = () => undefined
  const first = await startKafka(undefined, quiet, instance)
  const stop = async () => {
    const started = readStarted(name)
    if (started !== undefined) await stopProcess(started)
    forgetStarted(name)
  }
  return {
    brokers: first.brokers,
    saslBrokers: first.state.saslPort === undefined ? undefined : `127.0.0.1:${first.state.saslPort}`,
    saslSslBrokers: first.state.saslSslPort === undefined ? undefined : `127.0.0.1:${first.state.saslSslPort}`,
    restart: async () => {
      await stop()
      await startKafka(first.state, quiet, instance)
    },
    remove: async () => {
      await stop()
      fs.rmSync(instance.dataDir, { recursive: true, force: true })
    }
  }
}

/**
 * Apache Kafka in KRaft mode, one node acting as broker and controller, on loopback.
 * Its jars come from Maven Central through `mvn` (scripts/kafka/pom.xml) into the project cache;
 * the storage folder is formatted once and reused.
 */
import { Kafka, logLevel } from "kafkajs"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { dirs, ensureDir, projectRoot } from "./layout.ts"
import {
  choosePort,
  isAlive,
  readStarted,
  recordStarted,
  requireCommand,
  run,
  spawnDetached,
  waitUntil
} from "./process.ts"

export const kafkaVersion = process.env.SENTINEL_KAFKA_VERSION ?? "4.1.1"
const libs = path.join(dirs.cache, `kafka-${kafkaVersion}`, "libs")
const marker = "kafka.Kafka"

/** A broker's name (its pid and log files) and data folder; the stack runs one, fault tests their own. */
export interface KafkaInstance {
  readonly name: string
  readonly dataDir: string
}

export const stackKafka: KafkaInstance = { name: "kafka", dataDir: path.join(dirs.data, "kafka") }

/** Fetches the broker's jars once; a completed fetch leaves a stamp so a broken one is redone. */
const ensureJars = async (log: (line: string) => void): Promise<void> => {
  const stamp = path.join(libs, ".complete")
  if (fs.existsSync(stamp)) return
  requireCommand("mvn", "Apache Maven (e.g. `apt-get install maven`)")
  log(`kafka: fetching Apache Kafka ${kafkaVersion} jars from Maven Central`)
  fs.rmSync(libs, { recursive: true, force: true })
  await run("mvn", [
    "-B",
    "-q",
    "-f",
    path.join(projectRoot, "scripts", "kafka", "pom.xml"),
    "dependency:copy-dependencies",
    `-Dkafka.version=${kafkaVersion}`,
    "-DincludeScope=runtime",
    `-DoutputDirectory=${libs}`
  ])
  fs.writeFileSync(stamp, kafkaVersion)
}

/** Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. */
const clusterId = () => randomBytes(16).toString("base64url")

const java = (args: ReadonlyArray<string>) => [
  ...(process.env.KAFKA_HEAP_OPTS ?? "-Xms128m -Xmx512m").split(/\s+/).filter(Boolean),
  "-XX:+UseG1GC",
  `-Dlog4j2.configurationFile=${path.join(projectRoot, "scripts", "kafka", "log4j2.properties")}`,
  "-cp",
  `${libs}/*`,
  ...args
]

const writeConfig = ({ dataDir }: KafkaInstance, port: number, controllerPort: number): string => {
  const file = path.join(dataDir, "server.properties")
  const partitions = process.env.SENTINEL_TOPIC_PARTITIONS ?? "6"
  fs.writeFileSync(
    file,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      "controller.listener.names=CONTROLLER",
      "inter.broker.listener.name=PLAINTEXT",
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
      `log.dirs=${path.join(dataDir, "logs")}`,
      // Sentinel creates its own topics; a typo must not silently create a new one.
      "auto.create.topics.enable=false",
      `num.partitions=${partitions}`,
      "offsets.topic.replication.factor=1",
      "offsets.topic.num.partitions=6",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "share.coordinator.state.topic.replication.factor=1",
      "share.coordinator.state.topic.min.isr=1",
      "group.initial.rebalance.delay.ms=0",
      "log.retention.hours=168",
      ""
    ].join("\n")
  )
  return file
}

export const probeKafka = async (brokers: string): Promise<boolean> => {
  const admin = new Kafka({
    clientId: "sentinel-stack-probe",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 2000
  }).admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    return cluster.brokers.length > 0
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

export interface KafkaState {
  readonly port: number
  readonly controllerPort: number
}

export const startKafka = async (
  previous: KafkaState | undefined,
  log: (line: string) => void,
  instance: KafkaInstance = stackKafka
): Promise<{ brokers: string; state: KafkaState; started: boolean }> => {
  const { dataDir, name } = instance
  const running = readStarted(name)
  if (isAlive(running) && previous !== undefined) {
    const brokers = `127.0.0.1:${previous.port}`
    await waitUntil("kafka", () => probeKafka(brokers), 60_000)
    return { brokers, state: previous, started: false }
  }
  requireCommand("java", "a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)")
  await ensureJars(log)
  ensureDir(dataDir)
  const port = await choosePort(process.env.SENTINEL_KAFKA_PORT, previous?.port)
  const controllerPort = await choosePort(process.env.SENTINEL_KAFKA_CONTROLLER_PORT, previous?.controllerPort)
  const config = writeConfig(instance, port, controllerPort)
  if (!fs.existsSync(path.join(dataDir, "logs", "meta.properties"))) {
    log("kafka: formatting KRaft storage")
    await run(
      "java",
      java(["kafka.tools.StorageTool", "format", "-t", clusterId(), "-c", config, "--ignore-formatted"])
    )
  }
  const pid = spawnDetached("java", java([marker, config]), name)
  recordStarted(name, { pid, marker: config })
  const brokers = `127.0.0.1:${port}`
  await waitUntil("kafka", () => probeKafka(brokers), 90_000, () => {
    if (!isAlive({ pid, marker: config })) {
      throw new Error(`kafka exited during start; see ${path.join(dirs.logs, `${name}.log`)}`)
    }
  })
  return { brokers, state: { port, controllerPort }, started: true }
}

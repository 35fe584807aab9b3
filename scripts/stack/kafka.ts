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
  /**
   * Security tests: SASL listeners beside the PLAINTEXT one (which the probe and the broker itself
   * keep using), authenticating these users with PLAIN and SCRAM-SHA-256/512 — SASL_PLAINTEXT, and
   * SASL_SSL too when `tls` (a PEM certificate and unencrypted PKCS#8 key) is given.
   */
  readonly sasl?: {
    readonly users: Readonly<Record<string, string>>
    readonly tls?: { readonly certFile: string; readonly keyFile: string }
  }
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

/**
 * Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. Passed as `--cluster-id=…`:
 * such an id may begin with "-", which would read as an option.
 */
const clusterId = () => randomBytes(16).toString("base64url")

const java = (args: ReadonlyArray<string>) => [
  ...(process.env.KAFKA_HEAP_OPTS ?? "-Xms128m -Xmx512m").split(/\s+/).filter(Boolean),
  "-XX:+UseG1GC",
  `-Dlog4j2.configurationFile=${path.join(projectRoot, "scripts", "kafka", "log4j2.properties")}`,
  "-cp",
  `${libs}/*`,
  ...args
]

/** The SASL listeners' settings, and the listeners themselves (name and port). */
const saslConfig = (sasl: NonNullable<KafkaInstance["sasl"]>, state: KafkaState) => {
  const listeners = [
    ...(state.saslPort === undefined ? [] : [`SASL_PLAINTEXT://127.0.0.1:${state.saslPort}`]),
    ...(state.saslSslPort === undefined ? [] : [`SASL_SSL://127.0.0.1:${state.saslSslPort}`])
  ]
  const plainUsers = Object.entries(sasl.users).map(([user, password]) => `user_${user}="${password}"`).join(" ")
  const perListener = (listener: string) => [
    `listener.name.${listener}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
    ...["scram-sha-256", "scram-sha-512"].map((mechanism) =>
      `listener.name.${listener}.${mechanism}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`
    )
  ]
  return {
    listeners,
    properties: [
      "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
      ...perListener("sasl_plaintext"),
      ...(sasl.tls === undefined ? [] : [
        ...perListener("sasl_ssl"),
        "ssl.keystore.type=PEM",
        `ssl.keystore.certificate.chain=${pemLine(sasl.tls.certFile)}`,
        `ssl.keystore.key=${pemLine(sasl.tls.keyFile)}`
      ])
    ]
  }
}

/** A PEM file as one properties value (line breaks escaped). */
const pemLine = (file: string) => fs.readFileSync(file, "utf8").trim().split("\n").join("\\n")

const listeners = (all: ReadonlyArray<string>) => all.join(",")

const writeConfig = ({ dataDir, sasl }: KafkaInstance, state: KafkaState): string => {
  const { controllerPort, port } = state
  const file = path.join(dataDir, "server.properties")
  const partitions = process.env.SENTINEL_TOPIC_PARTITIONS ?? "6"
  const secured = sasl === undefined ? { listeners: [], properties: [] } : saslConfig(sasl, state)
  fs.writeFileSync(
    file,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=${
        listeners([`PLAINTEXT://127.0.0.1:${port}`, ...secured.listeners, `CONTROLLER://127.0.0.1:${controllerPort}`])
      }`,
      `advertised.listeners=${listeners([`PLAINTEXT://127.0.0.1:${port}`, ...secured.listeners])}`,
      "controller.listener.names=CONTROLLER",
      "inter.broker.listener.name=PLAINTEXT",
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
      ...secured.properties,
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
  /** The SASL listeners' ports, when the instance has them. */
  readonly saslPort?: number
  readonly saslSslPort?: number
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
  const state: KafkaState = {
    port,
    controllerPort,
    ...(instance.sasl === undefined ? {} : {
      saslPort: await choosePort(undefined, previous?.saslPort),
      ...(instance.sasl.tls === undefined ? {} : { saslSslPort: await choosePort(undefined, previous?.saslSslPort) })
    })
  }
  const config = writeConfig(instance, state)
  if (!fs.existsSync(path.join(dataDir, "logs", "meta.properties"))) {
    log("kafka: formatting KRaft storage")
    // SCRAM credentials live in the cluster metadata: written at format time.
    const scramUsers = Object.entries(instance.sasl?.users ?? {}).flatMap(([user, password]) =>
      ["SCRAM-SHA-256", "SCRAM-SHA-512"].flatMap((mechanism) => [
        "--add-scram",
        `${mechanism}=[name=${user},password=${password}]`
      ])
    )
    await run(
      "java",
      java([
        "kafka.tools.StorageTool",
        "format",
        `--cluster-id=${clusterId()}`,
        "-c",
        config,
        "--ignore-formatted",
        ...scramUsers
      ])
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
  return { brokers, state, started: true }
}

/**
 * Everything the benchmark starts or creates is registered here with the way to undo it, and undone
 * in reverse order: when a measurement is over, when the run ends, fails, or is interrupted (Ctrl-C).
 */

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

interface Item {
  readonly what: string
  readonly undo: () => Promise<unknown> | unknown
}

export class Cleanup {
  private readonly items: Array<Item> = []
  private closed = false

  /**
   * Registers `undo`; the returned function runs it now (once) and forgets it. Once the cleanup has
   * begun (an interrupt), whatever is still being created is undone at once and the run stops there.
   */
  add(what: string, undo: () => Promise<unknown> | unknown): () => Promise<void> {
    const item: Item = { what, undo }
    if (this.closed) {
      void this.undo(item)
      throw new Error(`interrupted (done at once: ${what})`)
    }
    this.items.push(item)
    return async () => {
      const index = this.items.indexOf(item)
      if (index === -1) return
      this.items.splice(index, 1)
      await this.undo(item)
    }
  }

  /** Undoes everything still registered, newest first; a failing undo is reported and the rest still run. */
  async all(): Promise<void> {
    this.closed = true
    for (let item = this.items.pop(); item !== undefined; item = this.items.pop()) await this.undo(item)
  }

  private async undo(item: Item): Promise<void> {
    try {
      await item.undo()
    } catch (error) {
      log(`cleanup: could not ${item.what}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
}

/** Runs `main`, then cleans up; on SIGINT/SIGTERM or a failure, cleans up and exits non-zero. */
export const runWithCleanup = (main: (cleanup: Cleanup) => Promise<void>): void => {
  const cleanup = new Cleanup()
  let stopping = false
  const interrupt = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    log(`${signal}: stopping what this run started`)
    void cleanup.all().finally(() => process.exit(130))
  }
  process.on("SIGINT", interrupt)
  process.on("SIGTERM", interrupt)
  main(cleanup).then(
    () => cleanup.all().then(() => process.exit(0)),
    (error: unknown) => {
      if (stopping) return
      stopping = true
      log(`failed: ${error instanceof Error ? error.message : String(error)}`)
      void cleanup.all().finally(() => process.exit(1))
    }
  )
}

/** A command line the command cannot act on; reported with the command's usage, exit code 2. */
export class UsageError extends Error {}

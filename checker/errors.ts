/** An error the user caused (a name or a value on the command line, an unsupported combination); the message says what is allowed. */
export class UserError extends Error {}

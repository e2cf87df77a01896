// Worker threads start as plain Node: register tsx's loader in this thread
// too, then run the TypeScript worker (see parallel.ts).
import { register } from "tsx/esm/api";

register();
await import("./worker.ts");

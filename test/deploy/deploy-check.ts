// Static checks of the deployment files (ops/deploy/Dockerfile, .dockerignore,
// ops/deploy/k8s/*.yaml), as functions from the files' text to a list of
// problems, so that test/deploy/deploy.test.ts can run them on the real files
// (no problem) and on broken copies (the problem it plants). Nothing here can
// build the image or talk to a Kubernetes API: there is neither here.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { parseAllDocuments } from "yaml";

/** The deployment files' text: the Dockerfile, the root .dockerignore, and every ops/deploy/k8s/*.yaml by file name. */
export interface DeployFiles {
  dockerfile: string;
  dockerignore: string;
  k8s: Record<string, string>;
}

export const DOCKERFILE = "ops/deploy/Dockerfile";
export const K8S_DIR = "ops/deploy/k8s";

export function readDeployFiles(root: string): DeployFiles {
  const k8s: Record<string, string> = {};
  for (const name of readdirSync(join(root, K8S_DIR))) if (name.endsWith(".yaml")) k8s[name] = readFileSync(join(root, K8S_DIR, name), "utf8");
  return { dockerfile: readFileSync(join(root, DOCKERFILE), "utf8"), dockerignore: readFileSync(join(root, ".dockerignore"), "utf8"), k8s };
}

/** What `speccommit serve --help` accepts: its flags (with --config) and its environment variables. */
export interface ServeOptions {
  flags: ReadonlySet<string>;
  envs: ReadonlySet<string>;
}

export function optionsOfHelp(help: string): ServeOptions {
  return {
    flags: new Set([...help.matchAll(/^ {2}(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]!)),
    envs: new Set([...help.matchAll(/\b(SPECCOMMIT_[A-Z0-9_]+)\b/g)].map((m) => m[1]!)),
  };
}

/** The settings given as secrets: never on argv, in env values or in a ConfigMap. */
const SECRET_SETTINGS = ["mysql_password", "admin_token", "metrics_token"];
const flagOf = (setting: string) => `--${setting.replaceAll("_", "-")}`;
const envOf = (setting: string) => `SPECCOMMIT_${setting.toUpperCase()}`;

// ---------------------------------------------------------------- Dockerfile

export interface Instruction {
  op: string;
  /** The text after the keyword, continuation lines joined. */
  rest: string;
}

/** Instructions in order: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) continue;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const whole = (pending + line).trim();
    pending = "";
    if (whole === "") continue;
    const m = /^(\S+)\s*(.*)$/s.exec(whole)!;
    out.push({ op: m[1]!.toUpperCase(), rest: m[2]!.trim() });
  }
  return out;
}

/** An exec-form argument list (`["a", "b"]`), or null for the shell form. */
export function execForm(rest: string): string[] | null {
  if (!rest.startsWith("[")) return null;
  try {
    const v = JSON.parse(rest) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : null;
  } catch {
    return null;
  }
}

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
      if (pattern[i + 1] === "/") i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * Whether Docker leaves `path` (relative to the context, `/`-separated) out of
 * the context: the last pattern matching the path or one of its parent
 * directories decides, `!` patterns let it back in.
 */
export function dockerignoreExcludes(dockerignore: string, path: string): boolean {
  const parts = path.split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let excluded = false;
  for (const raw of dockerignore.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negated = line.startsWith("!");
    const pattern = posix.normalize((negated ? line.slice(1) : line).trim()).replace(/^\/+|\/+$/g, "");
    const re = globToRegExp(pattern);
    if (prefixes.some((p) => re.test(p))) excluded = !negated;
  }
  return excluded;
}

function filesUnder(root: string, rel: string): string[] {
  const p = join(root, rel);
  if (!statSync(p).isDirectory()) return [rel];
  return readdirSync(p).flatMap((name) => filesUnder(root, `${rel}/${name}`));
}

/** What the Dockerfile says the image is, for the other checks and for running it here. */
export interface Image {
  /** COPY sources (context paths) and their destinations (absolute in the image). */
  copies: Array<{ from: string; to: string }>;
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  healthcheck: string[];
  /** Numeric uid of USER, or null when absent or by name. */
  uid: number | null;
  volumes: string[];
}

function parseEnv(rest: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) out[m[1]!] = m[3] ?? m[2]!;
  return out;
}

export function imageOf(dockerfile: string): Image {
  const img: Image = { copies: [], workdir: "/", env: {}, entrypoint: [], cmd: [], healthcheck: [], uid: null, volumes: [] };
  for (const { op, rest } of parseDockerfile(dockerfile)) {
    if (op === "WORKDIR") img.workdir = posix.resolve(img.workdir, rest);
    else if (op === "ENV") Object.assign(img.env, parseEnv(rest));
    else if (op === "ENTRYPOINT") img.entrypoint = execForm(rest) ?? ["/bin/sh", "-c", rest];
    else if (op === "CMD") img.cmd = execForm(rest) ?? ["/bin/sh", "-c", rest];
    else if (op === "VOLUME") img.volumes.push(...(execForm(rest) ?? rest.split(/\s+/)));
    else if (op === "USER") img.uid = /^\d+(:\d+)?$/.test(rest) ? Number(rest.split(":")[0]) : null;
    else if (op === "HEALTHCHECK") {
      const cmd = /\bCMD\s+(.*)$/s.exec(rest)?.[1] ?? "";
      img.healthcheck = execForm(cmd) ?? ["/bin/sh", "-c", cmd];
    } else if (op === "COPY") {
      const words = rest.split(/\s+/);
      const dest = words[words.length - 1]!;
      const to = posix.resolve(img.workdir, dest);
      // A destination ending in / (or several sources) is a directory the sources go into.
      const intoDir = words.length > 2 || dest.endsWith("/") || dest === ".";
      for (const from of words.slice(0, -1)) img.copies.push({ from, to: intoDir ? posix.join(to, posix.basename(from)) : to });
    }
  }
  return img;
}

/** Problems of the Dockerfile and .dockerignore; `root` is the build context (the repository). */
export function checkDockerfile(files: DeployFiles, root: string, opts: ServeOptions): string[] {
  const problems: string[] = [];
  const ins = parseDockerfile(files.dockerfile);
  const img = imageOf(files.dockerfile);
  const from = ins.filter((i) => i.op === "FROM");
  if (from.length !== 1 || !/^node:20(\.\d+)*-(bookworm-)?slim(@sha256:[0-9a-f]{64})?$/.test(from[0]!.rest)) {
    problems.push(`Dockerfile: expected one FROM node:20-slim (or node:20-bookworm-slim), got ${JSON.stringify(from.map((i) => i.rest))}`);
  }
  if (!ins.some((i) => i.op === "RUN" && /\bnpm ci\b/.test(i.rest) && /--omit=dev\b/.test(i.rest))) problems.push("Dockerfile: no RUN npm ci --omit=dev");
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  if (!("tsx" in (pkg.dependencies ?? {}))) problems.push("Dockerfile: npm ci --omit=dev leaves tsx out, but the server runs through it (package.json: tsx is not a runtime dependency)");
  for (const i of ins.filter((x) => x.op === "COPY" || x.op === "ADD")) {
    if (i.op === "ADD" || i.rest.startsWith("--")) problems.push(`Dockerfile: ${i.op} ${i.rest}: use plain COPY (no ADD, no --from/--chown: the image's files stay root's)`);
  }
  for (const { from: src } of img.copies) {
    if (!existsSync(join(root, src))) {
      problems.push(`Dockerfile: COPY source ${src} does not exist in the build context`);
      continue;
    }
    const left = filesUnder(root, src).filter((f) => dockerignoreExcludes(files.dockerignore, f));
    if (left.length > 0) problems.push(`Dockerfile: COPY ${src}: .dockerignore leaves ${left.length} of its files out of the context (e.g. ${left[0]})`);
  }
  for (const must of ["node_modules", ".git", ".speccommit", "out"]) {
    if (!dockerignoreExcludes(files.dockerignore, `${must}/x`)) problems.push(`.dockerignore: ${must}/ is sent to the build context`);
  }
  if (img.uid === null || img.uid === 0) problems.push(`Dockerfile: USER must be a numeric non-root uid (runAsNonRoot checks it), got ${JSON.stringify(ins.filter((i) => i.op === "USER").map((i) => i.rest))}`);
  problems.push(...checkEntrypoint(img, root));
  if (!img.volumes.includes("/tmp")) problems.push("Dockerfile: no VOLUME /tmp (tsx writes its cache there; the root filesystem is read-only)");
  if (!img.healthcheck.join(" ").includes("/healthz")) problems.push("Dockerfile: no HEALTHCHECK asking /healthz");
  for (const name of Object.keys(img.env)) {
    if (SECRET_SETTINGS.some((s) => envOf(s) === name)) problems.push(`Dockerfile: ENV ${name} puts a secret into the image`);
    else if (name.startsWith("SPECCOMMIT_") && !opts.envs.has(name)) problems.push(`Dockerfile: ENV ${name} is not a variable of serve --help`);
  }
  return problems;
}

function checkEntrypoint(img: Image, root: string): string[] {
  const problems: string[] = [];
  const [exe, script] = img.entrypoint;
  if (exe !== "node" || script === undefined) return [`Dockerfile: ENTRYPOINT must be exec form ["node", <script>], got ${JSON.stringify(img.entrypoint)}`];
  const inImage = posix.resolve(img.workdir, script);
  const copied = img.copies.find((c) => inImage === c.to || inImage.startsWith(c.to + "/"));
  if (copied === undefined) problems.push(`Dockerfile: ENTRYPOINT runs ${inImage}, which no COPY puts in the image`);
  else if (!existsSync(join(root, copied.from, posix.relative(copied.to, inImage)))) problems.push(`Dockerfile: ENTRYPOINT runs ${inImage}: ${copied.from}/${posix.relative(copied.to, inImage)} does not exist`);
  if (img.cmd.length === 0) problems.push("Dockerfile: no CMD");
  return problems;
}

// ---------------------------------------------------------------- Kubernetes

type Obj = Record<string, any>;

/** Every document of every manifest (Kubernetes reads YAML 1.1: 0440 is octal there). Parse errors are problems. */
export function parseManifests(k8s: Record<string, string>): { docs: Array<{ file: string; doc: Obj }>; problems: string[] } {
  const docs: Array<{ file: string; doc: Obj }> = [];
  const problems: string[] = [];
  for (const [file, text] of Object.entries(k8s)) {
    for (const d of parseAllDocuments(text, { version: "1.1" }) as Array<{ errors: Array<{ message: string }>; toJS(): unknown }>) {
      if (d.errors.length > 0) problems.push(`${file}: ${d.errors[0]!.message}`);
      const doc = d.toJS() as Obj | null;
      if (doc !== null && doc !== undefined) docs.push({ file, doc });
    }
  }
  return { docs, problems };
}

const subset = (small: Obj | undefined, big: Obj | undefined) =>
  small !== undefined && Object.keys(small).length > 0 && Object.entries(small).every(([k, v]) => big?.[k] === v);

/** The one StatefulSet and what hangs off it; throws with a message when the manifests lack one. */
export function workload(docs: Array<{ file: string; doc: Obj }>) {
  const sts = docs.filter((d) => d.doc.kind === "StatefulSet");
  if (sts.length !== 1) throw new Error(`expected one StatefulSet, found ${sts.length}`);
  const set = sts[0]!.doc;
  const pod: Obj = set.spec?.template?.spec ?? {};
  const containers: Obj[] = pod.containers ?? [];
  return { set, pod, container: containers[0] ?? {}, containers };
}

/** The container's args with `$(VAR)` replaced the way the kubelet does, for pod `podName`. */
export function expandArgs(container: Obj, podName: string): string[] {
  const env = envOfContainer(container, podName);
  return ((container.args ?? []) as unknown[]).map((a) => String(a).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, v: string) => env[v] ?? whole));
}

/** The container's environment as the pod `podName` sees it (values and metadata.name field refs). */
export function envOfContainer(container: Obj, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (container.env ?? []) as Obj[]) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[e.name] = podName;
  }
  return env;
}

/** `--flag value` pairs of serve's args (after the `serve` word). */
export function flagsOfArgs(args: string[]): { pairs: Array<[string, string]>; stray: string[] } {
  const pairs: Array<[string, string]> = [];
  const stray: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) stray.push(a);
    else if (a.includes("=")) pairs.push([a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]);
    else pairs.push([a, args[++i] ?? ""]);
  }
  return { pairs, stray };
}

/** The volume (and its mount) a file path in the container lies under. */
function volumeOf(pod: Obj, container: Obj, path: string): { mount: Obj; volume: Obj } | undefined {
  for (const mount of (container.volumeMounts ?? []) as Obj[]) {
    if (path.startsWith(String(mount.mountPath).replace(/\/$/, "") + "/")) {
      const volume = ((pod.volumes ?? []) as Obj[]).find((v) => v.name === mount.name);
      if (volume !== undefined) return { mount, volume };
    }
  }
  return undefined;
}

export function checkManifests(files: DeployFiles, opts: ServeOptions, image: Image): string[] {
  const { docs, problems } = parseManifests(files.k8s);
  for (const { file, doc } of docs) {
    if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") problems.push(`${file}: a document without apiVersion or kind`);
    else if (doc.kind !== "Kustomization" && typeof doc.metadata?.name !== "string") problems.push(`${file}: ${doc.kind} without metadata.name`);
  }
  let w: ReturnType<typeof workload>;
  try {
    w = workload(docs);
  } catch (e) {
    return [...problems, (e as Error).message];
  }
  problems.push(...checkKustomization(files, docs));
  problems.push(...checkSelectors(docs, w));
  problems.push(...checkSecurity(w, image));
  problems.push(...checkArgs(docs, w, opts));
  problems.push(...checkProbes(w));
  return problems;
}

function checkKustomization(files: DeployFiles, docs: Array<{ file: string; doc: Obj }>): string[] {
  const k = docs.find((d) => d.doc.kind === "Kustomization");
  if (k === undefined) return ["no kustomization.yaml"];
  const listed = new Set<string>(k.doc.resources ?? []);
  const others = Object.keys(files.k8s).filter((f) => f !== k.file);
  return [...others.filter((f) => !listed.has(f)).map((f) => `${k.file}: ${f} is not among its resources`), ...[...listed].filter((f) => !(f in files.k8s)).map((f) => `${k.file}: resource ${f} does not exist`)];
}

function checkSelectors(docs: Array<{ file: string; doc: Obj }>, w: ReturnType<typeof workload>): string[] {
  const problems: string[] = [];
  const labels: Obj = w.set.spec?.template?.metadata?.labels ?? {};
  if (!subset(w.set.spec?.selector?.matchLabels, labels)) problems.push("StatefulSet: spec.selector.matchLabels does not select its own pod template");
  const svc = docs.find((d) => d.doc.kind === "Service" && d.doc.metadata?.name === w.set.spec?.serviceName)?.doc;
  if (svc === undefined) problems.push(`StatefulSet: serviceName ${JSON.stringify(w.set.spec?.serviceName)} names no Service`);
  else {
    if (svc.spec?.clusterIP !== "None") problems.push("Service: the StatefulSet's governing Service must be headless (clusterIP: None): each coordinator is addressed by its own name");
    if (!subset(svc.spec?.selector, labels)) problems.push("Service: its selector does not select the coordinators' pods");
    for (const p of (svc.spec?.ports ?? []) as Obj[]) {
      if (!(w.container.ports ?? []).some((c: Obj) => c.name === p.targetPort || c.containerPort === p.targetPort)) problems.push(`Service: targetPort ${p.targetPort} is no port of the container`);
    }
  }
  const pdb = docs.find((d) => d.doc.kind === "PodDisruptionBudget")?.doc;
  if (pdb === undefined) problems.push("no PodDisruptionBudget");
  else {
    if (pdb.apiVersion !== "policy/v1") problems.push(`PodDisruptionBudget: apiVersion ${pdb.apiVersion}, expected policy/v1`);
    if (!subset(pdb.spec?.selector?.matchLabels, labels)) problems.push("PodDisruptionBudget: its selector does not select the coordinators' pods");
    if (pdb.spec?.maxUnavailable === undefined && pdb.spec?.minAvailable === undefined) problems.push("PodDisruptionBudget: neither maxUnavailable nor minAvailable");
  }
  const ann: Obj = w.set.spec?.template?.metadata?.annotations ?? {};
  if (ann["prometheus.io/scrape"] !== "true") problems.push('pod template: no annotation prometheus.io/scrape: "true"');
  if (!(w.container.ports ?? []).some((c: Obj) => String(c.containerPort) === ann["prometheus.io/port"])) problems.push(`pod template: prometheus.io/port ${JSON.stringify(ann["prometheus.io/port"])} is no container port`);
  return problems;
}

function checkSecurity(w: ReturnType<typeof workload>, image: Image): string[] {
  const problems: string[] = [];
  const { pod, container } = w;
  if (w.containers.length !== 1) problems.push(`pod: expected one container, found ${w.containers.length}`);
  const psc: Obj = pod.securityContext ?? {};
  const csc: Obj = container.securityContext ?? {};
  const uid = csc.runAsUser ?? psc.runAsUser ?? image.uid;
  if ((csc.runAsNonRoot ?? psc.runAsNonRoot) !== true) problems.push("pod: runAsNonRoot is not true");
  if (uid === 0 || uid === undefined || uid === null) problems.push(`pod: runs as uid ${uid}`);
  if (uid !== image.uid) problems.push(`pod: runAsUser ${uid} is not the image's USER ${image.uid}`);
  if (csc.readOnlyRootFilesystem !== true) problems.push("container: readOnlyRootFilesystem is not true");
  if (csc.allowPrivilegeEscalation !== false) problems.push("container: allowPrivilegeEscalation is not false");
  if (csc.privileged === true) problems.push("container: privileged");
  if (!(csc.capabilities?.drop ?? []).includes("ALL")) problems.push("container: capabilities do not drop ALL");
  if (pod.enableServiceLinks !== false) problems.push("pod: enableServiceLinks is not false (a Service named speccommit injects SPECCOMMIT_PORT=tcp://..., which the server refuses as its port)");
  if (pod.automountServiceAccountToken !== false) problems.push("pod: automountServiceAccountToken is not false (the server never calls the Kubernetes API)");
  if (container.command !== undefined) problems.push("container: command replaces the image's ENTRYPOINT; give args only");
  if (container.resources?.limits?.memory === undefined || container.resources?.limits?.cpu === undefined || container.resources?.requests === undefined) {
    problems.push("container: resources need requests and cpu and memory limits");
  }
  for (const mount of (container.volumeMounts ?? []) as Obj[]) {
    const volume = ((pod.volumes ?? []) as Obj[]).find((v) => v.name === mount.name);
    if (volume === undefined) problems.push(`container: volumeMount ${mount.name} names no volume`);
    else if (mount.readOnly !== true && !(volume.emptyDir !== undefined && mount.mountPath === "/tmp" && volume.emptyDir.sizeLimit !== undefined)) {
      problems.push(`container: ${mount.mountPath} is writable; only /tmp (an emptyDir with a sizeLimit) may be`);
    }
    if (volume?.secret !== undefined && mount.subPath !== undefined) problems.push(`container: Secret ${volume.secret.secretName} mounted with subPath: an updated Secret never reaches the file`);
    if (volume?.secret !== undefined && ((volume.secret.defaultMode ?? 0o644) & 0o007) !== 0) problems.push(`volume ${volume.name}: Secret files readable by every user (defaultMode ${(volume.secret.defaultMode ?? 0o644).toString(8)})`);
  }
  for (const e of (container.env ?? []) as Obj[]) {
    if (e.valueFrom?.secretKeyRef !== undefined) problems.push(`container: env ${e.name} comes from a Secret; secrets go in as files`);
  }
  if ((container.envFrom ?? []).some((e: Obj) => e.secretRef !== undefined)) problems.push("container: envFrom a Secret; secrets go in as files");
  return problems;
}

export const podNames = (w: ReturnType<typeof workload>) => Array.from({ length: Number(w.set.spec?.replicas ?? 1) }, (_, i) => `${w.set.metadata?.name}-${i}`);

function checkArgs(docs: Array<{ file: string; doc: Obj }>, w: ReturnType<typeof workload>, opts: ServeOptions): string[] {
  const problems: string[] = [];
  const { pod, container } = w;
  const raw = ((container.args ?? []) as unknown[]).map(String);
  if (raw[0] !== "serve") problems.push(`container: args must start with serve, got ${JSON.stringify(raw[0])}`);
  for (const e of (container.env ?? []) as Obj[]) {
    if (SECRET_SETTINGS.some((s) => envOf(s) === e.name)) problems.push(`container: env ${e.name}: a secret as an environment variable (visible in the pod spec)`);
    else if (String(e.name).startsWith("SPECCOMMIT_") && !opts.envs.has(e.name)) problems.push(`container: env ${e.name} is not a variable of serve --help`);
  }
  for (const [i, name] of podNames(w).entries()) {
    const args = expandArgs(container, name);
    const left = args.find((a) => /\$\([^)]*\)/.test(a));
    if (left !== undefined) problems.push(`container: ${left}: a $(VAR) that no env of the container defines (the kubelet leaves it as it is)`);
    const { pairs, stray } = flagsOfArgs(args);
    if (stray.length > 0) problems.push(`container: args ${JSON.stringify(stray)} are not --flag value`);
    const flags = new Map(pairs);
    if (i > 0) continue;
    for (const [flag] of pairs) {
      if (!opts.flags.has(flag)) problems.push(`container: ${flag} is not an option of serve --help`);
      if (SECRET_SETTINGS.some((s) => flagOf(s) === flag)) problems.push(`container: ${flag} puts a secret on the command line (visible in ps and in the pod spec)`);
    }
    for (const flag of ["--tokens-file", "--mysql-password-file"]) {
      const path = flags.get(flag);
      const at = path === undefined ? undefined : volumeOf(pod, container, path);
      if (at?.volume.secret === undefined) problems.push(`container: ${flag} ${path} is not a file of a mounted Secret`);
      else {
        const items: Obj[] | undefined = at.volume.secret.items;
        const rel = posix.relative(at.mount.mountPath, path!);
        if (items !== undefined && !items.some((it) => it.path === rel)) problems.push(`container: ${flag} ${path}: the Secret's items have no path ${rel}`);
      }
    }
    const port = flags.get("--port");
    if (!(container.ports ?? []).some((p: Obj) => String(p.containerPort) === port)) problems.push(`container: --port ${port} is no containerPort`);
  }
  problems.push(...checkPodConfigs(docs, w, opts));
  return problems;
}

/** Each pod's settings file exists, holds known settings and no secret, and no two pods share an etcd prefix, a shard or a shard's address. */
function checkPodConfigs(docs: Array<{ file: string; doc: Obj }>, w: ReturnType<typeof workload>, opts: ServeOptions): string[] {
  const problems: string[] = [];
  const { pod, container } = w;
  const seen = new Map<string, string>();
  const claim = (what: string, pod: string) => {
    const other = seen.get(what);
    if (other !== undefined && other !== pod) problems.push(`${pod} and ${other} share ${what}: every coordinator needs its own etcd prefix and shards (the resolver would roll back the other's branches)`);
    seen.set(what, pod);
  };
  for (const name of podNames(w)) {
    const config = new Map(flagsOfArgs(expandArgs(container, name)).pairs).get("--config");
    const at = config === undefined ? undefined : volumeOf(pod, container, config);
    const cm = docs.find((d) => d.doc.kind === "ConfigMap" && d.doc.metadata?.name === at?.volume.configMap?.name)?.doc;
    const text: unknown = cm?.data?.[posix.relative(at?.mount.mountPath ?? "/", config ?? "")];
    if (typeof text !== "string") {
      problems.push(`${name}: --config ${config} is no key of a mounted ConfigMap`);
      continue;
    }
    let settings: Obj;
    try {
      settings = JSON.parse(text) as Obj;
    } catch (e) {
      problems.push(`${name}: ${config}: ${(e as Error).message}`);
      continue;
    }
    for (const key of Object.keys(settings)) {
      if (SECRET_SETTINGS.includes(key)) problems.push(`${name}: ${config}: the secret ${key} in a ConfigMap`);
      else if (key === "config" || !opts.flags.has(flagOf(key))) problems.push(`${name}: ${config}: ${key} is not a setting of serve --help`);
    }
    claim(`etcd prefix ${settings.etcd_prefix ?? "speccommit/"}`, name);
    for (const shard of String(settings.shards ?? "").split(",").filter((s) => s !== "")) {
      const [shardName, address] = shard.split("=");
      claim(`shard ${shardName}`, name);
      claim(`shard address ${address}`, name);
    }
    const grace_ms = Number(settings.shutdown_grace_ms ?? 10_000);
    if (Number(pod.terminationGracePeriodSeconds ?? 30) * 1000 < grace_ms + 2_000) {
      problems.push(`${name}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} leaves no room for shutdown_grace_ms ${grace_ms} plus 2 s: the kubelet kills the drain`);
    }
  }
  return problems;
}

function checkProbes(w: ReturnType<typeof workload>): string[] {
  const problems: string[] = [];
  const c = w.container;
  const port = (p: Obj | undefined) => (c.ports ?? []).find((x: Obj) => x.name === p?.httpGet?.port || x.containerPort === p?.httpGet?.port)?.containerPort;
  if (c.readinessProbe?.httpGet?.path !== "/ready") problems.push(`readinessProbe: path ${c.readinessProbe?.httpGet?.path}, expected /ready`);
  const live = c.livenessProbe?.httpGet?.path;
  if (live !== "/healthz" && live !== "/health") problems.push(`livenessProbe: path ${live}, expected /healthz (not /ready: a shard down would restart every coordinator)`);
  if (c.startupProbe !== undefined && c.startupProbe.httpGet?.path === "/ready") problems.push("startupProbe: on /ready a shard down at start keeps restarting the pod");
  for (const [what, p] of [["readinessProbe", c.readinessProbe], ["livenessProbe", c.livenessProbe], ["startupProbe", c.startupProbe]] as const) {
    if (p !== undefined && port(p) === undefined) problems.push(`${what}: port ${p.httpGet?.port} is no container port`);
  }
  return problems;
}

/** Paths the cluster will ask a pod for, with who asks: the probes (no credential) and the Prometheus scrape (a metrics token). */
export function askedPaths(files: DeployFiles): Array<{ what: string; path: string; scope: "none" | "metrics" }> {
  const w = workload(parseManifests(files.k8s).docs);
  const c = w.container;
  const out: Array<{ what: string; path: string; scope: "none" | "metrics" }> = [];
  for (const what of ["readinessProbe", "livenessProbe", "startupProbe"] as const) {
    const path = c[what]?.httpGet?.path;
    if (path !== undefined) out.push({ what, path, scope: "none" });
  }
  const ann: Obj = w.set.spec?.template?.metadata?.annotations ?? {};
  out.push({ what: "prometheus.io/path", path: ann["prometheus.io/path"] ?? "/metrics", scope: "metrics" });
  return out;
}

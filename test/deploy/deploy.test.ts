// The deployment files (ops/deploy/Dockerfile, .dockerignore,
// ops/deploy/k8s/*.yaml). No Docker engine and no Kubernetes here, so:
// - statically (test/deploy/deploy-check.ts): the YAML parses, required fields
//   are there, selectors select, every flag and variable passed exists in
//   `serve --help`, non-root, read-only root filesystem, secrets as files only,
//   one etcd prefix and one set of shards per coordinator, every COPY source
//   exists and is in the build context; and each check fails on a broken copy;
// - for real: the image's files (exactly what its COPY lines take) in a fresh
//   directory, run with the image's ENTRYPOINT and ENV and the StatefulSet's
//   args and env, the ConfigMap's settings file (its shards and etcd pointed at
//   a real test cluster) and a Secret's files at their mount paths, as an
//   unprivileged user whose only writable directory is TMPDIR: it starts,
//   every path the cluster asks (the probes, the Prometheus scrape) answers
//   200, a transfer commits as the configured MariaDB user with the password
//   file, the image's HEALTHCHECK passes, SIGTERM drains and exits 0 within the
//   pod's grace period, and nothing in the image's directory changed.
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, type Config } from "../../runtime/config.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import {
  askedPaths,
  checkDockerfile,
  checkManifests,
  dockerignoreExcludes,
  expandArgs,
  envOfContainer,
  imageOf,
  optionsOfHelp,
  parseManifests,
  podNames,
  readDeployFiles,
  workload,
  type DeployFiles,
  type Image,
} from "./deploy-check.ts";

const root = join(import.meta.dirname, "..", "..");
const help = execFileSync(process.execPath, [join(root, "bin", "speccommit.js"), "serve", "--help"], { encoding: "utf8" });
const opts = optionsOfHelp(help);
const real = readDeployFiles(root);

const allProblems = (files: DeployFiles): string[] => [...checkDockerfile(files, root, opts), ...checkManifests(files, opts, imageOf(files.dockerfile))];

/** A copy of the files with one text replaced in one of them; throws if the text is not there (a mutant that changes nothing proves nothing). */
function broken(file: string, from: string | RegExp, to: string): DeployFiles {
  const copy: DeployFiles = { dockerfile: real.dockerfile, dockerignore: real.dockerignore, k8s: { ...real.k8s } };
  const text = file === "Dockerfile" ? copy.dockerfile : file === ".dockerignore" ? copy.dockerignore : copy.k8s[file]!;
  const changed = text.replace(from, to);
  if (changed === text) throw new Error(`mutant: ${String(from)} not found in ${file}`);
  if (file === "Dockerfile") copy.dockerfile = changed;
  else if (file === ".dockerignore") copy.dockerignore = changed;
  else copy.k8s[file] = changed;
  return copy;
}

/** Each a planted defect and the problem it must produce. */
const MUTANTS: Array<{ name: string; file: string; from: string | RegExp; to: string; problem: RegExp }> = [
  { name: "unknown flag", file: "statefulset.yaml", from: "- --tokens-file", to: "- --tokens-path", problem: /--tokens-path is not an option of serve --help/ },
  { name: "password on argv", file: "statefulset.yaml", from: "- --mysql-password-file", to: "- --mysql-password", problem: /--mysql-password puts a secret on the command line/ },
  { name: "password from a Secret as env", file: "statefulset.yaml", from: "            - name: NODE_OPTIONS\n              value: --max-old-space-size=384", to: "            - name: SPECCOMMIT_MYSQL_PASSWORD\n              valueFrom:\n                secretKeyRef: {name: speccommit-secrets, key: mysql-password}", problem: /env SPECCOMMIT_MYSQL_PASSWORD comes from a Secret/ },
  { name: "unknown variable", file: "statefulset.yaml", from: "- name: NODE_OPTIONS", to: "- name: SPECCOMMIT_NODE_OPTIONS", problem: /SPECCOMMIT_NODE_OPTIONS is not a variable of serve --help/ },
  { name: "writable root filesystem", file: "statefulset.yaml", from: "readOnlyRootFilesystem: true", to: "readOnlyRootFilesystem: false", problem: /readOnlyRootFilesystem is not true/ },
  { name: "root user", file: "statefulset.yaml", from: "runAsUser: 1000", to: "runAsUser: 0", problem: /runs as uid 0/ },
  { name: "runAsNonRoot off", file: "statefulset.yaml", from: "runAsNonRoot: true", to: "runAsNonRoot: false", problem: /runAsNonRoot is not true/ },
  { name: "service links on", file: "statefulset.yaml", from: "enableServiceLinks: false", to: "enableServiceLinks: true", problem: /enableServiceLinks is not false/ },
  { name: "liveness on /ready", file: "statefulset.yaml", from: /livenessProbe:\n(\s+)httpGet:\n(\s+)path: \/healthz/, to: "livenessProbe:\n$1httpGet:\n$2path: /ready", problem: /livenessProbe: path \/ready/ },
  { name: "probe on a port that is not the container's", file: "statefulset.yaml", from: /readinessProbe:\n(\s+)httpGet:\n(\s+)path: \/ready\n(\s+)port: http/, to: "readinessProbe:\n$1httpGet:\n$2path: /ready\n$3port: 9090", problem: /readinessProbe: port 9090 is no container port/ },
  { name: "secret with subPath", file: "statefulset.yaml", from: "mountPath: /run/secrets/speccommit\n", to: "mountPath: /run/secrets/speccommit\n              subPath: tokens\n", problem: /mounted with subPath/ },
  { name: "world-readable secret", file: "statefulset.yaml", from: "defaultMode: 288", to: "defaultMode: 0644", problem: /Secret files readable by every user/ },
  { name: "tokens file outside the Secret", file: "statefulset.yaml", from: "- /run/secrets/speccommit/tokens", to: "- /etc/speccommit/tokens", problem: /--tokens-file \/etc\/speccommit\/tokens is not a file of a mounted Secret/ },
  { name: "writable mount", file: "statefulset.yaml", from: "mountPath: /etc/speccommit\n              readOnly: true", to: "mountPath: /etc/speccommit", problem: /\/etc\/speccommit is writable/ },
  { name: "no grace for the drain", file: "statefulset.yaml", from: "terminationGracePeriodSeconds: 30", to: "terminationGracePeriodSeconds: 5", problem: /leaves no room for shutdown_grace_ms/ },
  { name: "a pod without a settings file", file: "statefulset.yaml", from: "replicas: 2", to: "replicas: 3", problem: /speccommit-2: --config \/etc\/speccommit\/speccommit-2.json is no key/ },
  { name: "two coordinators on one shard", file: "configmap.yaml", from: "shard-c=mariadb-shard-c", to: "shard-a=mariadb-shard-c", problem: /speccommit-1 and speccommit-0 share shard shard-a/ },
  { name: "two coordinators on one prefix", file: "configmap.yaml", from: '"etcd_prefix": "speccommit/speccommit-1/"', to: '"etcd_prefix": "speccommit/speccommit-0/"', problem: /share etcd prefix/ },
  { name: "an unknown setting in a settings file", file: "configmap.yaml", from: '"mysql_user": "speccommit",', to: '"mysql_usr": "speccommit",', problem: /speccommit-0: \/etc\/speccommit\/speccommit-0.json: mysql_usr is not a setting/ },
  { name: "a secret in the ConfigMap", file: "configmap.yaml", from: '"mysql_user": "speccommit",', to: '"mysql_user": "speccommit", "mysql_password": "x",', problem: /the secret mysql_password in a ConfigMap/ },
  { name: "Service selects nothing", file: "service.yaml", from: /selector:\n(\s+)app.kubernetes.io\/name: speccommit/, to: "selector:\n$1app.kubernetes.io/name: speccomit", problem: /Service: its selector does not select/ },
  { name: "Service not headless", file: "service.yaml", from: "clusterIP: None", to: "type: ClusterIP", problem: /must be headless/ },
  { name: "PDB selects nothing", file: "pdb.yaml", from: "matchLabels:\n      app.kubernetes.io/name: speccommit", to: "matchLabels:\n      app.kubernetes.io/name: speccomit", problem: /PodDisruptionBudget: its selector does not select/ },
  { name: "scrape on another port", file: "statefulset.yaml", from: 'prometheus.io/port: "8080"', to: 'prometheus.io/port: "9100"', problem: /prometheus.io\/port "9100" is no container port/ },
  { name: "a manifest kustomize does not apply", file: "kustomization.yaml", from: "  - pdb.yaml\n", to: "", problem: /pdb.yaml is not among its resources/ },
  { name: "YAML that does not parse", file: "pdb.yaml", from: "maxUnavailable: 1", to: "maxUnavailable: [1", problem: /pdb.yaml: / },
  { name: "image as root", file: "Dockerfile", from: "USER 1000:1000", to: "USER root", problem: /USER must be a numeric non-root uid/ },
  { name: "COPY of a missing path", file: "Dockerfile", from: "COPY runtime ./runtime", to: "COPY runtime ./runtime\nCOPY server ./server", problem: /COPY source server does not exist/ },
  { name: "COPY left out by .dockerignore", file: ".dockerignore", from: "!conformance\n", to: "", problem: /COPY conformance: .dockerignore leaves/ },
  { name: "node_modules sent to the context", file: ".dockerignore", from: "!runtime", to: "!runtime\n!node_modules", problem: /node_modules\/ is sent to the build context/ },
  { name: "ENTRYPOINT on a missing file", file: "Dockerfile", from: 'ENTRYPOINT ["node", "bin/speccommit.js"]', to: 'ENTRYPOINT ["node", "bin/speccommit.mjs"]', problem: /bin\/speccommit.mjs does not exist/ },
  { name: "dev dependencies in the image", file: "Dockerfile", from: "npm ci --omit=dev", to: "npm ci", problem: /no RUN npm ci --omit=dev/ },
  { name: "no HEALTHCHECK", file: "Dockerfile", from: /HEALTHCHECK [^\n]*\\\n[^\n]*\n/, to: "", problem: /no HEALTHCHECK asking \/healthz/ },
  { name: "no writable /tmp", file: "Dockerfile", from: 'VOLUME ["/tmp"]', to: "", problem: /no VOLUME \/tmp/ },
  { name: "password baked into the image", file: "Dockerfile", from: "SPECCOMMIT_PORT=8080", to: "SPECCOMMIT_PORT=8080 \\\n    SPECCOMMIT_MYSQL_PASSWORD=x", problem: /ENV SPECCOMMIT_MYSQL_PASSWORD puts a secret into the image/ },
];

/** Loads every pod's args, env and settings file (laid out under a temporary directory) with the server's own loadConfig; returns the configs or throws its ConfigError. */
function loadPods(files: DeployFiles): Config[] {
  const base = mkdtempSync(join(tmpdir(), "speccommit-deploy-config-"));
  try {
    return podNames(workload(parseManifests(files.k8s).docs)).map((name) => {
      const { argv, env } = podProcess(files, name, { base: join(base, name), secrets: { tokens: "", "mysql-password": "pw-of-the-test\n" } });
      expect(argv.slice(0, 2)).toEqual(["bin/speccommit.js", "serve"]);
      const r = loadConfig({ argv: argv.slice(2), env });
      if (r.help) throw new Error(`${name}: --help in the args`);
      return r.config;
    });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

describe("deployment files, statically", () => {
  it("serve --help lists the flags and variables the checks compare with", () => {
    for (const f of ["--config", "--tokens-file", "--mysql-password-file", "--host", "--port"]) expect(opts.flags).toContain(f);
    expect(opts.envs).toContain("SPECCOMMIT_PORT");
  });

  it("the Dockerfile, .dockerignore and every manifest pass every check", () => {
    expect(Object.keys(real.k8s).sort()).toEqual(["configmap.yaml", "kustomization.yaml", "pdb.yaml", "service.yaml", "statefulset.yaml"]);
    expect(allProblems(real)).toEqual([]);
  });

  it.each(MUTANTS)("a broken copy is caught: $name", ({ file, from, to, problem }) => {
    const problems = allProblems(broken(file, from, to));
    expect(problems.some((p) => problem.test(p)), problems.join("\n")).toBe(true);
  });

  it(".dockerignore matching follows Docker's rules (last match wins, a parent directory's match counts)", () => {
    const ignore = "*\n!bin\nbin/secret*\n!keep/**/x.ts\n";
    expect(dockerignoreExcludes(ignore, "bin/speccommit.js")).toBe(false);
    expect(dockerignoreExcludes(ignore, "bin/secret.key")).toBe(true);
    expect(dockerignoreExcludes(ignore, "node_modules/a/b.js")).toBe(true);
    expect(dockerignoreExcludes(ignore, "keep/a/b/x.ts")).toBe(false);
    expect(dockerignoreExcludes(ignore, "keep/a/b/y.ts")).toBe(true);
  });

  it("every pod's args, env and settings file (as shipped) load with the server's own configuration loader", () => {
    const configs = loadPods(real);
    expect(configs.map((c) => c.etcd_prefix)).toEqual(["speccommit/speccommit-0/", "speccommit/speccommit-1/"]);
    for (const c of configs) {
      expect(c).toMatchObject({ auth: "tokens", mysql_user: "speccommit", mysql_password: "pw-of-the-test", port: 0, host: "127.0.0.1" });
      expect(c.shards).toMatch(/^shard-/);
    }
  });

  it("a settings value the server refuses is caught by its loader (a broken copy)", () => {
    const bad = broken("configmap.yaml", '"etcd_prefix": "speccommit/speccommit-1/"', '"etcd_prefix": "speccommit/speccommit 1/"');
    expect(allProblems(bad)).toEqual([]);
    expect(() => loadPods(bad)).toThrow(/etcd_prefix.*is not allowed/);
  });

  it("the Secret's files are mode 0440: the YAML is read as Kubernetes reads it", () => {
    const { pod } = workload(parseManifests(real.k8s).docs);
    expect(pod.volumes.find((v: { secret?: unknown }) => v.secret !== undefined).secret.defaultMode).toBe(0o440);
  });
});

// ------------------------------------------------------------- for real

const image: Image = imageOf(real.dockerfile);
let dir: string;
let app: string;

/** The image's WORKDIR as its COPY lines make it, in `app`; npm ci's node_modules stands in as a link to ours (test/repo/packaging.test.ts checks that --omit=dev suffices). */
function materializeImage(): void {
  dir = mkdtempSync(join(tmpdir(), "speccommit-deploy-"));
  app = join(dir, "app");
  mkdirSync(app, { recursive: true });
  for (const c of image.copies) {
    const to = join(app, posix.relative(image.workdir, c.to));
    cpSync(join(root, c.from), to, { recursive: true, filter: (src) => !dockerignoreExcludes(real.dockerignore, posix.relative(root, src) || ".") || src === root });
  }
  symlinkSync(join(root, "node_modules"), join(app, "node_modules"));
  for (const p of [dir, app]) chmodSync(p, 0o755);
}

/** Every path under `d` with its size and mtime: what the image's directory must still be after the server ran. */
function snapshot(d: string): string[] {
  return readdirSync(d, { recursive: true, withFileTypes: false })
    .map(String)
    .filter((p) => !p.startsWith("node_modules"))
    .map((p) => {
      const s = statSync(join(d, p));
      return `${p} ${s.size} ${s.mtimeMs}`;
    })
    .sort();
}

/** The uid the server runs as: nobody when we are root and nobody can read the files; else ourselves (then only the snapshot shows writes). */
const NOBODY = 65534;
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const probe = spawnSync(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(join(root, "node_modules", "tsx", "package.json"))})`], { uid: NOBODY, gid: NOBODY });
  return probe.status === 0 ? { uid: NOBODY, gid: NOBODY } : undefined;
}

interface PodLayout {
  /** Where the volumes' files go. */
  base: string;
  /** The Secret's content by key. */
  secrets: Record<string, string>;
  /** Settings to put over each settings file's (the test cluster's shards and etcd); none: as shipped. */
  override?: Record<string, string>;
  /** The user the pod runs as, to own /tmp and be the Secret files' group. */
  as?: { uid: number; gid: number } | undefined;
}

/**
 * Lays out pod `podName`'s mounted volumes under `layout.base` as the kubelet
 * would (ConfigMap keys as files, the Secret's items with its defaultMode, an
 * empty /tmp) and returns its argv (after the image's `node`) and env, with the
 * mount paths rewritten to those directories and any free port on loopback
 * instead of 8080 on every address (the static checks compared the real ones).
 */
function podProcess(files: DeployFiles, podName: string, layout: PodLayout): { argv: string[]; env: Record<string, string>; tmp: string } {
  const { docs } = parseManifests(files.k8s);
  const { pod, container } = workload(docs);
  const mounts = new Map<string, string>();
  for (const m of container.volumeMounts as Array<{ name: string; mountPath: string }>) {
    const volume = pod.volumes.find((v: { name: string }) => v.name === m.name);
    const local = join(layout.base, `mnt-${m.name}`);
    mkdirSync(local, { recursive: true });
    if (volume.configMap !== undefined) {
      const data: Record<string, string> = docs.find((d) => d.doc.kind === "ConfigMap" && d.doc.metadata.name === volume.configMap.name)!.doc.data;
      for (const [key, text] of Object.entries(data)) writeFileSync(join(local, key), layout.override === undefined ? text : JSON.stringify({ ...JSON.parse(text), ...layout.override }));
    } else if (volume.secret !== undefined) {
      for (const item of volume.secret.items as Array<{ key: string; path: string }>) {
        writeFileSync(join(local, item.path), layout.secrets[item.key]!);
        if (layout.as !== undefined) chownSync(join(local, item.path), 0, layout.as.gid);
        chmodSync(join(local, item.path), volume.secret.defaultMode);
      }
    } else if (layout.as !== undefined) chownSync(local, layout.as.uid, layout.as.gid);
    mounts.set(m.mountPath, local);
  }
  const args = expandArgs(container, podName).map((a) => {
    for (const [mountPath, local] of mounts) if (a.startsWith(mountPath + "/")) return local + a.slice(mountPath.length);
    return a;
  });
  for (const [flag, value] of [["--port", "0"], ["--host", "127.0.0.1"]] as const) {
    if (!args.includes(flag)) throw new Error(`the pod's args have no ${flag}`);
    args[args.indexOf(flag) + 1] = value;
  }
  const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...image.env, ...envOfContainer(container, podName), TMPDIR: mounts.get("/tmp")! };
  return { argv: [...image.entrypoint.slice(1), ...args], env, tmp: mounts.get("/tmp")! };
}

describe("deployment files, run: the image's files with the pod's args, env, settings and secrets", () => {
  const PASSWORD = randomBytes(12).toString("hex");
  const tokens = { teller: randomBytes(32).toString("hex"), scraper: randomBytes(32).toString("hex") };
  const sha = (t: string) => createHash("sha256").update(t).digest("hex");
  const as = runAs();
  let cluster: TestCluster;

  beforeAll(async () => {
    materializeImage();
    cluster = await startTestCluster({ shards: 2, accountsPerShard: 100 });
    const { pod } = workload(parseManifests(real.k8s).docs);
    const settings = pod.volumes.find((v: { configMap?: unknown }) => v.configMap !== undefined);
    const user = JSON.parse(parseManifests(real.k8s).docs.find((d) => d.doc.metadata?.name === settings.configMap.name)!.doc.data["speccommit-0.json"]).mysql_user as string;
    // The pod connects as the least-privilege user `cluster up` made on every shard (docs/operations.md, the
    // shard user's GRANTs); the pod's one password file serves every shard, so the test gives that user one password.
    for (const s of cluster.shards) {
      expect(s.serverAddress().user, "the settings' mysql_user is the shard user cluster up makes").toBe(user);
      const c = await s.connect();
      const [rows] = await c.query("SELECT Host FROM mysql.user WHERE User = ?", [user]);
      const hosts = (rows as { Host: string }[]).map((r) => r.Host);
      expect(hosts.length, `cluster up made no '${user}' on ${s.name}`).toBeGreaterThan(0);
      for (const host of hosts) await c.query(`ALTER USER '${user}'@'${host}' IDENTIFIED BY '${PASSWORD}'`);
      await c.end();
    }
  });

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const secrets = () => ({ tokens: `teller transfer,read ${sha(tokens.teller)}\nscraper metrics ${sha(tokens.scraper)}\n`, "mysql-password": PASSWORD + "\n" });
  const testCluster = () => ({ shards: cluster.shards.map((x) => `${x.name}=127.0.0.1:${x.db.port}`).join(","), etcd: cluster.etcd.clientUrl });

  it("ENTRYPOINT with CMD (no arguments given) runs and prints serve's options", () => {
    const r = spawnSync(process.execPath, [...image.entrypoint.slice(1), ...image.cmd], { cwd: app, env: { PATH: process.env["PATH"] ?? "", ...image.env }, encoding: "utf8" });
    expect(image.entrypoint[0]).toBe("node");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("usage: speccommit serve");
  });

  it("pod speccommit-0 starts, answers every path the cluster asks, commits, passes the HEALTHCHECK, and drains on SIGTERM", async () => {
    const before = snapshot(app);
    const { argv, env, tmp } = podProcess(real, "speccommit-0", { base: dir, secrets: secrets(), override: testCluster(), as });
    const child = spawn(process.execPath, argv, { cwd: app, env, stdio: ["ignore", "pipe", "pipe"], ...(as ?? {}) });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      for (let i = 0; i < 600 && !/listening on/.test(out) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      expect(url, out).toBeDefined();
      // /ready turns 200 once the resolver's first scan is complete: give it the time the startup probe gives.
      for (let i = 0; i < 300 && (await fetch(`${url}/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await askLive(real, url!, tokens.scraper)).toEqual([]);
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const t = await fetch(`${url}/transfer`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokens.teller}`, "content-type": "application/json" },
        body: JSON.stringify({ ops: [{ shard_id: "shard-a", account_id: 1, delta: "-1.00" }, { shard_id: "shard-b", account_id: 101, delta: "1.00" }] }),
      });
      expect(await t.json()).toMatchObject({ status: "committed" });
      const port = new URL(url!).port;
      const health = spawnSync(process.execPath, image.healthcheck.slice(1), { env: { ...image.env, SPECCOMMIT_PORT: port }, encoding: "utf8" });
      expect(health.status, health.stderr).toBe(0);
      // The broken copy's probe path meets the same live server and is caught.
      const bad = broken("statefulset.yaml", "path: /ready", "path: /readyz");
      expect(await askLive(bad, url!, tokens.scraper)).toEqual(["readinessProbe: GET /readyz answered 404, expected 200"]);
      child.kill("SIGTERM");
      const grace_s = Number(workload(parseManifests(real.k8s).docs).pod.terminationGracePeriodSeconds);
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("still running"), grace_s * 1000))]);
      expect(code, out).toBe(0);
      const after = spawnSync(process.execPath, image.healthcheck.slice(1), { env: { ...image.env, SPECCOMMIT_PORT: port } });
      expect(after.status).toBe(1);
    } finally {
      child.kill("SIGKILL");
    }
    expect(out).toContain("speccommit: stopped");
    // Nothing written where the image's files are; tsx's cache went to TMPDIR.
    expect(snapshot(app)).toEqual(before);
    expect(readdirSync(tmp).some((n) => n.startsWith("tsx-")), readdirSync(tmp).join(",")).toBe(true);
    if (as !== undefined) expect(out).not.toMatch(/EACCES|EROFS/);
  }, 120_000);
});

/** Asks the live server every path the manifests make the cluster ask: each must answer 200 (the scrape with a metrics token). */
async function askLive(files: DeployFiles, url: string, metricsToken: string): Promise<string[]> {
  const problems: string[] = [];
  for (const { what, path, scope } of askedPaths(files)) {
    const r = await fetch(`${url}${path}`, { headers: scope === "metrics" ? { authorization: `Bearer ${metricsToken}` } : {} });
    await r.arrayBuffer();
    if (r.status !== 200) problems.push(`${what}: GET ${path} answered ${r.status}, expected 200`);
  }
  return problems;
}

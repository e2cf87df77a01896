/**
 * The system binaries the local cluster runs (MariaDB, etcd) and their
 * installation. Debian puts mariadbd in /usr/sbin, which is not on a normal
 * user's PATH, so we look there too.
 */
import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const SYSTEM_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"];
const INSTALL_TIMEOUT_MS = 10 * 60_000;

export const SYSTEM_PACKAGES = ["mariadb-server", "etcd-server", "etcd-client"] as const;
export const INSTALL_COMMAND = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${SYSTEM_PACKAGES.join(" ")}`;

const INSTALL_SCRIPT = fileURLToPath(new URL("../../scripts/install-system-deps.sh", import.meta.url));

/** Absolute path of an executable, searching PATH then the usual system dirs; undefined if absent. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d.length > 0), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  return undefined;
}

export function requireBinary(name: string): string {
  const path = findBinary(name);
  if (path === undefined) {
    throw new Error(`'${name}' not found (searched PATH and ${SYSTEM_DIRS.join(", ")}); install it with: ${INSTALL_COMMAND}`);
  }
  return path;
}

const REQUIRED_BINARIES = ["mariadbd", "mariadb-install-db", "etcd"] as const;

export function missingBinaries(): string[] {
  return REQUIRED_BINARIES.filter((b) => findBinary(b) === undefined);
}

/**
 * Installs MariaDB and etcd with scripts/install-system-deps.sh when a binary
 * is missing. Only root can; anyone else gets the command to run.
 */
export async function ensureSystemPackages(log: (line: string) => void = () => {}): Promise<void> {
  const missing = missingBinaries();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.join(", ")}; as root, run: ${INSTALL_COMMAND}`);
  }
  log(`installing system packages (missing: ${missing.join(", ")}) ...`);
  await new Promise<void>((resolve, reject) => {
    execFile("bash", [INSTALL_SCRIPT], { timeout: INSTALL_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${INSTALL_SCRIPT} failed: ${err.message}\n${stdout}${stderr}`.trimEnd()));
      else resolve();
    });
  });
  const still = missingBinaries();
  if (still.length > 0) throw new Error(`still missing after install: ${still.join(", ")}`);
}

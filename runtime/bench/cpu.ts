/**
 * Where the CPU goes during a phase: CPU time of each process of the run
 * (server, every mariadbd, etcd, this benchmark) and of the whole machine,
 * from /proc, between two samples. On a shared 2-core machine this is what
 * explains a figure: the machine's busy time minus ours is everyone else's.
 *
 * /proc/<pid>/stat utime+stime count every thread of the process, in
 * USER_HZ ticks (100 per second on Linux, whatever the kernel's HZ).
 */
import { readFileSync } from "node:fs";

const USER_HZ = 100;

export interface CpuSample {
  readonly at_ms: number;
  /** CPU seconds per component; absent when its /proc entry could not be read (not Linux, process gone). */
  readonly procs: ReadonlyMap<string, number>;
  /** Machine: busy and total CPU seconds over all cores, since boot. */
  readonly machine: { busy_s: number; total_s: number } | null;
}

function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return undefined;
  }
}

function machineCpuSeconds(): CpuSample["machine"] {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const [, ...ticks] = line.trim().split(/\s+/);
    const t = ticks.map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const total = t.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = t[3]! + t[4]!;
    return { busy_s: (total - idle) / USER_HZ, total_s: total / USER_HZ };
  } catch {
    return null;
  }
}

export function sampleCpu(pids: ReadonlyMap<string, number>): CpuSample {
  const procs = new Map<string, number>();
  for (const [name, pid] of pids) {
    const s = procCpuSeconds(pid);
    if (s !== undefined) procs.set(name, s);
  }
  return { at_ms: performance.now(), procs, machine: machineCpuSeconds() };
}

export interface CpuUse {
  readonly wall_s: number;
  /** Cores busy on average per component (CPU seconds / wall seconds). */
  readonly cores: Record<string, number>;
  /** Whole machine; `others` is the machine minus the components above. */
  readonly machine_cores: number | null;
  readonly others_cores: number | null;
  readonly machine_cores_total: number | null;
}

const round = (x: number) => Math.round(x * 100) / 100;

/** CPU time summed over several intervals (the rounds of one target). */
export class CpuTally {
  private wall_s = 0;
  private readonly procs = new Map<string, number>();
  private machine: { busy_s: number; total_s: number } | null = { busy_s: 0, total_s: 0 };

  /** Adds the interval from `a` to `b`. A component missing from either sample is left out of this interval. */
  add(a: CpuSample, b: CpuSample): void {
    this.wall_s += (b.at_ms - a.at_ms) / 1000;
    for (const [name, s] of b.procs) {
      const before = a.procs.get(name);
      if (before !== undefined) this.procs.set(name, (this.procs.get(name) ?? 0) + s - before);
    }
    if (a.machine === null || b.machine === null || this.machine === null) this.machine = null;
    else this.machine = { busy_s: this.machine.busy_s + b.machine.busy_s - a.machine.busy_s, total_s: this.machine.total_s + b.machine.total_s - a.machine.total_s };
  }

  use(): CpuUse {
    const w = this.wall_s;
    const cores: Record<string, number> = {};
    let ours = 0;
    for (const [name, s] of this.procs) {
      cores[name] = w > 0 ? round(s / w) : 0;
      ours += w > 0 ? s / w : 0;
    }
    if (this.machine === null || w === 0) return { wall_s: round(w), cores, machine_cores: null, others_cores: null, machine_cores_total: null };
    const busy = this.machine.busy_s / w;
    return { wall_s: round(w), cores, machine_cores: round(busy), others_cores: round(Math.max(0, busy - ours)), machine_cores_total: round(this.machine.total_s / w) };
  }
}

/**
 * How much memory a new allocation can take on this machine, for refusing a training run that would
 * not fit before it starts (train/memory-estimate.ts).
 *
 * Linux: MemAvailable from /proc/meminfo (free memory plus the page cache and slabs the kernel can
 * reclaim), capped by the memory cgroup's limit when the process runs under one (a container, a
 * systemd slice): a cgroup kills its processes at its limit whatever the host has free. A cgroup's
 * room is its limit minus its usage, where usage leaves out the inactive file cache the kernel
 * reclaims first (as `docker stats` counts it), so a container that once read a large file does not
 * look full. The process's own cgroup (from /proc/self/cgroup) and every parent up to the mount's root
 * are read, and the smallest room counts: a limit set on a parent binds its children too.
 * Elsewhere, or when none of that can be read: os.freemem().
 */
import { readFileSync } from "node:fs";
import { freemem } from "node:os";

/** Where the probe reads; tests point these at fake files. */
export interface MemoryProbePaths {
  /** /proc/meminfo */
  meminfo: string;
  /** The cgroup v2 folder holding memory.max, memory.current and memory.stat. */
  cgroupV2: string;
  /** The cgroup v1 memory controller folder holding memory.limit_in_bytes and memory.usage_in_bytes. */
  cgroupV1: string;
  /** /proc/self/cgroup: where below those folders this process's cgroup is. */
  selfCgroup: string;
}

export const MEMORY_PROBE_PATHS: MemoryProbePaths = {
  meminfo: "/proc/meminfo",
  cgroupV2: "/sys/fs/cgroup",
  cgroupV1: "/sys/fs/cgroup/memory",
  selfCgroup: "/proc/self/cgroup",
};

/** cgroup v1 writes "no limit" as a huge number (2^63 rounded down to a page); above this is none. */
const NO_LIMIT = 2 ** 60;

/** Bytes available to this process: MemAvailable capped by the cgroup's room, else os.freemem(). */
export function availableMemoryBytes(paths: Partial<MemoryProbePaths> = {}): number {
  const p = { ...MEMORY_PROBE_PATHS, ...paths };
  const host = memAvailable(p.meminfo);
  const cgroup = cgroupRoom(p);
  const known = [host, cgroup].filter((v): v is number => v !== null);
  return known.length > 0 ? Math.min(...known) : freemem();
}

/** MemAvailable in bytes, or null without a readable /proc/meminfo line (not Linux, kernel < 3.14). */
export function memAvailable(path: string): number | null {
  const text = readText(path);
  const m = text === null ? null : /^MemAvailable:\s+(\d+)\s*kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/**
 * The smallest limit-minus-usage over this process's cgroup and its parents (v2, else v1), or null
 * when no limit is set or there is no cgroup file to read.
 */
export function cgroupRoom(p: Omit<MemoryProbePaths, "meminfo">): number | null {
  const own = ownCgroups(p.selfCgroup);
  const v2 = rooms(p.cgroupV2, own.v2, "memory.max", "memory.current", "inactive_file");
  if (v2.read) return v2.room;
  return rooms(p.cgroupV1, own.v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    .room;
}

/** This process's cgroup paths ("/user.slice/x"): the v2 line "0::/path", the v1 "N:...memory...:/path". */
function ownCgroups(path: string): { v2: string; v1: string } {
  const out = { v2: "/", v1: "/" };
  for (const line of (readText(path) ?? "").split("\n")) {
    const [id, controllers, cgroup] = line.split(":", 3);
    if (cgroup === undefined) continue;
    if (id === "0" && controllers === "") out.v2 = cgroup;
    else if (controllers?.split(",").includes("memory")) out.v1 = cgroup;
  }
  return out;
}

/**
 * Reads `root + own` and each parent folder up to `root`. Inside a container the mount's root is the
 * container's own cgroup and `own` names a folder that does not exist there, so only the root is read.
 */
function rooms(root: string, own: string, limitFile: string, usageFile: string, inactiveKey: string) {
  const parts = own.split("/").filter((s) => s !== "" && s !== "..");
  let read = false;
  let best: number | null = null;
  for (let n = parts.length; n >= 0; n--) {
    const dir = [root, ...parts.slice(0, n)].join("/");
    const limitText = readText(`${dir}/${limitFile}`);
    if (limitText === null) continue;
    read = true;
    const limit = limitText.trim() === "max" ? Number.POSITIVE_INFINITY : Number(limitText.trim());
    if (!(limit < NO_LIMIT)) continue;
    const r = room(limit, readNumber(`${dir}/${usageFile}`), dir, inactiveKey);
    best = best === null ? r : Math.min(best, r);
  }
  return { read, room: best };
}

/** limit − (usage − inactive file cache), at least 0. */
function room(limit: number, usage: number | null, dir: string, inactiveKey: string): number {
  const stat = readText(`${dir}/memory.stat`);
  const m = stat === null ? null : new RegExp(`^${inactiveKey} (\\d+)$`, "m").exec(stat);
  const used = Math.max(0, (usage ?? 0) - (m ? Number(m[1]) : 0));
  return Math.max(0, limit - used);
}

function readNumber(path: string): number | null {
  const t = readText(path);
  const n = t === null ? Number.NaN : Number(t.trim());
  return Number.isFinite(n) ? n : null;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

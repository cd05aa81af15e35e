"""CPU time and memory of processes, from /proc (Linux; no psutil needed)."""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'
    end = raw.rfind(")")
    return [raw[:end + 1].split(" (", 1)[1][:-1], *raw[end + 2:].split()]


def comm(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def tree(root: int) -> list[int]:
    """root and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields:
            children.setdefault(int(fields[2]), []).append(int(entry))  # fields[2] = ppid
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def pids_by_comm(*names: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and comm(int(entry)) in names:
            pids.append(int(entry))
    return pids


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def postgres_pids(database: str) -> list[int]:
    """PostgreSQL's backends serving `database` plus its background processes (WAL writer,
    checkpointer...), not the backends of other databases (other people's test runs)."""
    pids = []
    for pid in pids_by_comm("postgres"):
        line = cmdline(pid)
        if not line.startswith("postgres:"):
            pids.append(pid)  # the postmaster itself
            continue
        words = line.split()
        is_backend = "(" in line and len(words) >= 5  # "postgres: 15/main: USER DB HOST(PORT) STATE"
        if not is_backend or words[3] == database:
            pids.append(pid)
    return pids


def cpu_seconds(pids) -> float:
    """utime + stime of the processes, in seconds. Not cutime/cstime: PostgreSQL's postmaster
    collects there the CPU of every backend that exits, other people's test runs included."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            # after comm: state(1) ppid(2) ... utime(12) stime(13) cutime(14) cstime(15)
            total += int(fields[12]) + int(fields[13])
    return total / CLK_TCK


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot: user, nice, system, irq and
    softirq; not idle, iowait, nor steal (the hypervisor running someone else)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:7]) - idle) / CLK_TCK


def memory_kb(pids) -> dict[str, int]:
    """Summed VmRSS and VmHWM (peak RSS) of the processes, in kB."""
    rss = hwm = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            continue
    return {"rss_kb": rss, "hwm_kb": hwm}


def threads(pids) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total

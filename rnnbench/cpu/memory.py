"""The memory the CPU backend can use: the machine's available RAM, or what the process's
cgroup memory limit leaves where that is lower (a container's limit, which /proc/meminfo
does not show); and how freed memory stays in the process for the next call.
"""

import ctypes
import functools
import os
import platform
from pathlib import Path

from ..config import KEEP_FREED_MEMORY
from . import workspace

PROC_CGROUP = "/proc/self/cgroup"  # this process's cgroup in each hierarchy
NO_LIMIT = 2**60  # cgroup v1 reports "no limit" as a number near 2^63
# Where each cgroup version mounts its memory controller, and its files: the limit,
# the usage, and the key in memory.stat of the page cache it can drop (counted free).
CGROUPS = {
    2: (Path("/sys/fs/cgroup"), "memory.max", "memory.current", "inactive_file"),
    1: (
        Path("/sys/fs/cgroup/memory"),
        "memory.limit_in_bytes",
        "memory.usage_in_bytes",
        "total_inactive_file",
    ),
}


def free_memory(release: bool = False) -> tuple[int, str] | None:
    """(bytes, what they are): the least of the available RAM and the room under the
    limits of the process's memory cgroups; None where neither can be read.

    `release` first lets go of the buffers the layer calls keep for reuse
    (`rnnbench.cpu.workspace`) and gives the memory that glibc keeps for reuse
    (`keep_freed_memory`) back to the system.
    """
    if release:
        workspace.release()
        libc = _glibc()
        if libc is not None:
            libc.malloc_trim(0)
    known = [
        (available, where)
        for available, where in (
            (_available_ram(), "the machine's available RAM"),
            (_cgroup_room(), "left under the memory limit of this process's cgroup"),
        )
        if available is not None
    ]
    return min(known) if known else None


# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@functools.cache
def _glibc():
    """The C library where it is glibc (its malloc takes `mallopt`), else None."""
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed memory in the process for the next allocation (once per
    process, from the first layer call; not where config.KEEP_FREED_MEMORY is off);
    whether it does.

    By default glibc maps each allocation above 128 KiB to 32 MiB (its threshold
    rises with what is freed) afresh and unmaps it when it is freed, and gives the
    top of its heap back above twice that, so the arrays of each call (outputs,
    gradients, the tape's copy of x, the backward's pre-activation gradients, NumPy's
    temporaries) came as fresh pages, a page fault on the first touch of each (about
    1 us per 4 KiB on this project's virtual machine): IndRNN training at T=1024,
    B=16, H=256 took 1,600 faults and 52 ms a call, 0 and 45 ms with freed memory
    kept; LSTM at that shape 240 and 206 ms. The memory stays counted as the
    process's until `free_memory(release=True)`, which `rnnbench.memory` calls
    before it reports too little memory.
    """
    libc = _glibc()
    if not KEEP_FREED_MEMORY or libc is None:
        return False
    # No allocation mapped on its own, and the heap's free top kept up to 2 GiB.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def _read(path) -> str | None:
    """The text of a small file, None where it cannot be read; by os.read, not
    Path.read_text (a `free_memory` call, which reads six files here, twice in each
    training step, took 43 us, and 91-136 by Path)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return b"".join(iter(functools.partial(os.read, fd, 1 << 16), b"")).decode()
    except OSError:
        return None
    finally:
        os.close(fd)


def _available_ram() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free pages from sysconf, else None."""
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """The least (limit - usage + droppable page cache) over the memory cgroup of this
    process and the cgroups above it; None where none has a limit."""
    rooms = []
    for limit_file, usage_file, stat_file, cache_key in _cgroup_levels():
        limit = (_read(limit_file) or "max").strip()
        if limit == "max" or int(limit) >= NO_LIMIT:
            continue
        stat = (_read(stat_file) or "").split()
        cache = int(stat[stat.index(cache_key) + 1]) if cache_key in stat else 0
        rooms.append(int(limit) - int(_read(usage_file) or 0) + cache)
    return min(rooms) if rooms else None


@functools.cache
def _cgroup_levels() -> list[tuple]:
    """(limit file, usage file, memory.stat, its page-cache key) of each level, from this
    process's memory cgroup up, that has a limit file; looked up once per process."""
    levels = []
    for line in (_read(PROC_CGROUP) or "").splitlines():
        _, controllers, path = line.split(":", 2)
        version = 2 if controllers == "" else 1 if "memory" in controllers.split(",") else None
        if version is None:
            continue
        mount, limit_file, usage_file, cache_key = CGROUPS[version]
        folder = mount / path.lstrip("/")
        for level in (folder, *(p for p in folder.parents if p.is_relative_to(mount))):
            if (level / limit_file).is_file():
                levels.append(
                    (level / limit_file, level / usage_file, level / "memory.stat", cache_key)
                )
    return levels

"""ctypes wrappers for the Linux calls that Python 3.11's `os` module does not offer."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38

_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
# The same number on every architecture: added after the syscall tables were unified.
_SYS_MOUNT_SETATTR = 442
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# pivot_root has no C library wrapper; its number is 155 on x86-64 and 41 where the generic
# syscall table is used (arm64, riscv64, loongarch64).
_SYS_PIVOT_ROOT = {"x86_64": 155, "i686": 217, "i386": 217}.get(os.uname().machine, 41)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _check(result: int, what: str) -> None:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(int(_libc.unshare(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2)."""
    _check(
        int(
            _libc.mount(
                None if source is None else source.encode(),
                target.encode(),
                None if fstype is None else fstype.encode(),
                flags,
                data.encode() if data else None,
            )
        ),
        f"mount {target}",
    )


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(int(_libc.umount2(target.encode(), flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): `new_root` becomes the root mount of this mount namespace."""
    result = _libc.syscall(
        ctypes.c_long(_SYS_PIVOT_ROOT),
        ctypes.c_char_p(new_root.encode()),
        ctypes.c_char_p(put_old.encode()),
    )
    _check(int(result), f"pivot_root {new_root}")


def set_readonly(path: str, readonly: bool, recursive: bool) -> None:
    """Set or clear the read-only flag of the mount at `path` (mount_setattr(2), Linux >= 5.12)."""
    attr = _MountAttr()
    if readonly:
        attr.attr_set = _MOUNT_ATTR_RDONLY
    else:
        attr.attr_clr = _MOUNT_ATTR_RDONLY
    result = _libc.syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(path.encode()),
        ctypes.c_uint(_AT_RECURSIVE if recursive else 0),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(int(result), f"mount_setattr {path}")


def set_parent_death_signal(signum: int) -> None:
    """prctl(PR_SET_PDEATHSIG): the kernel sends `signum` when the parent dies."""
    _check(int(_libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)), "prctl(PR_SET_PDEATHSIG)")


def set_dumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 1): a uid change clears it, and /proc/self/* needs it to stay ours."""
    _check(int(_libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)), "prctl(PR_SET_DUMPABLE)")


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS): execve can never grant privileges (setuid bits, file caps)."""
    _check(int(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)), "prctl(PR_SET_NO_NEW_PRIVS)")


# Built once: a sample calls capset right after its fork, where each new object costs page faults.
_CAP_HEADER = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
_NO_CAPS = (_CapData * 2)()


def drop_capabilities() -> None:
    """capset(2) with empty sets: clears the effective, permitted and inheritable capabilities."""
    _CAP_HEADER.version = _LINUX_CAPABILITY_VERSION_3
    _check(int(_libc.capset(ctypes.byref(_CAP_HEADER), _NO_CAPS)), "capset")


def release_free_heap() -> None:
    """malloc_trim(0) where the C library has it (glibc): return the heap's free pages to the
    kernel, so that a fork copies fewer page table entries and its exit tears down fewer."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace that `fd` refers to."""
    _check(int(_libc.setns(fd, nstype)), "setns")

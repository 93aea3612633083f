"""A file's stamp: what its metadata says of its content, read without opening it.

A stamp is (size, mtime ns, ctime ns, inode), what git's index compares before it reads
a file (rsync and make compare less: size and mtime, mtime). ``--resume`` takes a file
whose stamp is the one recorded with its document as unchanged (:mod:`ocrlab.output.resume`);
the journal keeps the stamps (:mod:`ocrlab.output.journal`).

What a stamp cannot see: content rewritten in place with the same size while both its
mtime and its ctime stay what they were. mtime can be set back (``os.utime``,
``touch -d``, ``cp -p``), but ctime cannot by any system call: it takes the clock's time
at every change, so such a rewrite needs the system clock set back, a file system that
does not keep ctime (some FUSE and SMB mounts report mtime for it), or a change the
kernel never saw (the disk written under a mounted file system, a snapshot rolled back
in place).

Racy stamps: a file changed again within its file system's timestamp granularity right
after it was stamped would keep the same stamp (git's "racy clean" case). An input's
stamp is therefore only recorded when its mtime is at least :data:`RACY_NS` older than
the moment it is taken (``racy=True``); a younger input is hashed on resume. Artifacts
are stamped as written: ocrlab is their only writer, each written whole and renamed into
place (a new inode each time).
"""

from __future__ import annotations

import os
import time
from typing import Any

#: (size, mtime ns, ctime ns, inode)
Stamp = tuple[int, int, int, int]

#: an input younger than this (mtime against the clock) gets no stamp: it is hashed on
#: resume. Two seconds cover the coarsest timestamps in use (FAT's 2 s, ext3's 1 s).
RACY_NS = 2_000_000_000


def file_stamp(path: str | os.PathLike[str], *, racy: bool = False) -> Stamp | None:
    """The stamp of ``path``, or None when it cannot be stat'ed (or, ``racy=True``, when
    it changed less than :data:`RACY_NS` ago: a stamp about to be recorded)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return None if racy and is_racy(stamp) else stamp


def is_racy(stamp: Stamp) -> bool:
    """True for a file modified less than :data:`RACY_NS` ago: its stamp is not trusted.

    mtime, as git does: ctime is as young whenever mtime was set back (``os.utime``),
    and a rewrite that also restores mtime within the window is not an accident.
    """
    return time.time_ns() - stamp[1] < RACY_NS


def parse_stamp(raw: Any) -> Stamp | None:
    """A stamp read back from a journal line; anything but four integers is none."""
    if isinstance(raw, list) and len(raw) == 4 and all(type(v) is int for v in raw):
        return (raw[0], raw[1], raw[2], raw[3])
    return None

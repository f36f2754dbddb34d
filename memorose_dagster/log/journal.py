"""pysyncobj's file journal, made to fail cleanly when the disk does.

``FileJournal`` is an mmap that grows by ``ftruncate``: the new pages have no disk blocks, so on
a full disk the first store into them is a SIGBUS and the process dies (measured on a full tmpfs:
"Fatal Python error: Bus error" in ``ResizableFile.write``). And ``add`` appends the entry to its
in-memory list before writing the file, so a write that raised would leave the two disagreeing:
the next entry is written over the lost one's place and a restart reads a shifted log.

``GuardedJournal`` reserves real blocks (``posix_fallocate``) before the mapping grows, so a full
disk is an ``OSError`` here, and it rolls the in-memory list back when a write fails. Both become
a ``StorageFault``, which the tick thread turns into a paced retry. The meta file (term, vote,
commit index) is written with ``open().write``: its ``OSError`` becomes a ``StorageFault`` too.
"""

from __future__ import annotations

import os
import struct

from pysyncobj.journal import FileJournal
from pysyncobj.pickle import to_bytes

from memorose_dagster.log.faults import FaultFile, StorageFault

SOURCE = "raft journal"
GROW_MAX = 16 * 1024 * 1024  # grow the journal file by at most this much at a time


class GuardedJournal(FileJournal):
    """A ``FileJournal`` whose writes raise ``StorageFault`` instead of crashing or diverging.

    Installed over the journal pysyncobj opened (``guard``): pysyncobj has no journal hook.
    """

    fault_file: FaultFile
    _allocated: int
    _wanted: int

    @classmethod
    def guard(cls, journal: FileJournal, fault_file: FaultFile) -> GuardedJournal:
        journal.__class__ = cls
        assert isinstance(journal, GuardedJournal)
        journal.watch(fault_file)
        return journal

    def watch(self, fault_file: FaultFile) -> None:
        self.fault_file = fault_file
        self._allocated = 0  # bytes of the file known to have blocks
        self._wanted = 0  # the reservation that failed last, for ``probe``

    def _mapped(self) -> tuple[object, int]:
        resizable = self._FileJournal__journalFile
        mm = resizable._ResizableFile__mm  # noqa: SLF001 - pysyncobj exposes no file handle
        return mm, resizable._ResizableFile__f.fileno()  # noqa: SLF001

    def _reserve(self, end: int) -> None:
        """Give the file real blocks up to ``end`` (and a margin), growing the mapping to match."""
        mm, fd = self._mapped()
        size = len(mm)
        if end <= self._allocated and end <= size:
            return
        if end <= size:
            os.posix_fallocate(fd, self._allocated, size - self._allocated)
            self._allocated = size
            return
        new_size = max(end, size + min(size, GROW_MAX))
        self._wanted = new_size
        try:
            os.posix_fallocate(fd, 0, new_size)
        except OSError:
            if os.fstat(fd).st_size != size:  # keep the file as long as the mapping
                os.ftruncate(fd, size)
            raise
        mm.resize(new_size)  # the file is already this long: ftruncate changes nothing
        self._allocated = new_size
        self._wanted = 0

    def probe(self) -> None:
        """Raise ``StorageFault`` while the reservation that failed last still cannot be made."""
        try:
            self.fault_file.check(SOURCE)
            if self._wanted:
                self._reserve(self._wanted)
        except OSError as exc:
            raise StorageFault.of(exc, SOURCE) from exc

    def add(self, command: bytes, idx: int, term: int) -> None:
        entries = self._FileJournal__journal
        count = len(entries)
        record = 4 + 16 + len(to_bytes(command)) + 4
        try:
            self.fault_file.check(SOURCE)
            self._reserve(self._FileJournal__currentOffset + record)
            super().add(command, idx, term)
        except Exception as exc:
            del entries[count:]  # the file's record count and end offset did not move
            if isinstance(exc, OSError | StorageFault):
                raise StorageFault.of(exc, SOURCE) from exc
            raise

    def setCurrentTerm(self, term: int, votedForNodeId: object) -> None:  # noqa: N802, N803
        try:
            super().setCurrentTerm(term, votedForNodeId)
        except OSError as exc:  # the vote is not sent: Raft needs it on disk first
            raise StorageFault.of(exc, SOURCE + " meta") from exc

    def onOneSecondTimer(self) -> None:  # noqa: N802
        try:
            super().onOneSecondTimer()
        except OSError as exc:
            raise StorageFault.of(exc, SOURCE + " meta") from exc


def journal_problem(path: str) -> str | None:
    """What is wrong with the journal file at ``path`` (pysyncobj's format: a 40-byte header
    ending with the records' end offset, then ``size | idx term command | size`` records), or
    None. pysyncobj itself would fail on it with a bare struct error, at every start."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER:
        return f"{len(data)} bytes, shorter than the {HEADER}-byte header"
    if not data.startswith(b"PYSYNCOBJ"):
        return "not a pysyncobj journal (bad header)"
    end = struct.unpack("<I", data[HEADER - 4:HEADER])[0]
    if end > len(data):
        return f"truncated: its header says records end at byte {end}, the file has {len(data)}"
    offset = HEADER
    while offset < end:
        size = struct.unpack("<I", data[offset:offset + 4])[0] if offset + 4 <= end else -1
        tail = offset + 4 + size
        if size < 16 or tail + 4 > end or data[tail:tail + 4] != data[offset:offset + 4]:
            return f"damaged record at byte {offset}"
        offset = tail + 4
    return None


HEADER = 40

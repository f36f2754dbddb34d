"""Frame size limits on the Raft port, enforced before a frame is buffered.

pysyncobj frames are a 4-byte length and that many bytes, and it reads a whole frame into memory
before it decrypts (authenticates) it. So anyone who reaches the port could announce 2 GB (the
bytes ``GET `` of an HTTP request read as 542 MB) and stream zeros: the tick thread that also
commits spent its time appending to an ever larger buffer, every commit timed out and memory
grew by what was sent. Here a connection is dropped as soon as it announces a frame above its
limit: a small one until the peer has sent one frame that decrypted with the cluster secret,
then one above the largest legitimate message.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

log = logging.getLogger("memorose.raft")

# pysyncobj cuts appendEntries and snapshots into ~1 MiB messages, but a follower forwards a
# client's command to the leader whole: an ingest body (8 MiB by default) as msgpack, pickled,
# zlib'd and Fernet'd (base64: x4/3) is the largest legitimate frame.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# Before it has authenticated a peer sends its random session key (a ~150-byte frame) and then
# its address or a status/add/remove request: all small.
MAX_FIRST_FRAME_BYTES = 64 * 1024
_HEADER = struct.Struct("i")  # pysyncobj's: native int, signed


class GuardedTransport(TCPTransport):
    """pysyncobj's TCP transport with every connection's frame size capped.

    Pass as ``SyncObj(..., transportClass=functools.partial(GuardedTransport, max_frame=N))``.
    """

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any,
                 max_frame: int = MAX_FRAME_BYTES, max_first_frame: int = MAX_FIRST_FRAME_BYTES):
        # Set before TCPTransport.__init__, which creates the outgoing connections.
        self._max_frame = max_frame
        self._max_first_frame = min(max_first_frame, max_frame)
        super().__init__(syncObj, selfNode, otherNodes)

    def _onNewIncomingConnection(self, conn: TcpConnection) -> None:
        guard(conn, self._max_frame, self._max_first_frame)
        super()._onNewIncomingConnection(conn)

    def addNode(self, node: Any) -> None:
        super().addNode(node)
        conn = self._connections.get(node)
        if conn is not None:
            guard(conn, self._max_frame, self._max_first_frame)


def guard(conn: TcpConnection, max_frame: int, max_first_frame: int) -> None:
    """Drop ``conn`` when the frame it is receiving announces more than its limit.

    pysyncobj has no public hook on the read path: its read loop calls the private
    ``__processRead`` (one ``recv``) until the socket is drained, then parses whole frames. This
    wraps that method on the instance, so the check runs after every ``recv``.
    """
    read = conn._TcpConnection__processRead  # noqa: SLF001 (pysyncobj: no public read hook)

    def guarded_read() -> bool:
        if not read():
            return False
        buffered = conn._TcpConnection__readBuffer  # noqa: SLF001 (no public buffer view)
        if len(buffered) < _HEADER.size:
            return True
        (size,) = _HEADER.unpack_from(buffered)
        # pysyncobj sets sendRandKey from the first frame that decrypted with the cluster
        # secret (the peer's session key) and clears it on disconnect.
        limit = max_frame if conn.sendRandKey else max_first_frame
        if not 0 < size <= limit:
            log.warning("raft port: dropped a connection announcing a %d-byte frame (limit %d%s)",
                        size, limit, "" if conn.sendRandKey else " before authenticating")
            conn.disconnect()
            return False
        # Once a whole frame is in, let pysyncobj parse it before reading more: the buffer stays
        # near one frame even when a peer sends faster than it is read.
        return len(buffered) < _HEADER.size + size

    conn._TcpConnection__processRead = guarded_read  # noqa: SLF001 (pysyncobj: no public hook)

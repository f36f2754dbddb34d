"""Domain errors. The API's handlers module alone turns them into HTTP responses."""

from __future__ import annotations


class MemoroseError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, **details: object):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(MemoroseError):
    status = 400
    code = "invalid_input"


class PayloadTooLarge(MemoroseError):
    status = 413
    code = "payload_too_large"


class Unauthorized(MemoroseError):
    status = 401
    code = "unauthorized"


class Forbidden(MemoroseError):
    status = 403
    code = "forbidden"


class NotFound(MemoroseError):
    status = 404
    code = "not_found"


class Conflict(MemoroseError):
    status = 409
    code = "conflict"


class LeaseHeld(Conflict):
    """Another pipeline step holds a lease on some of the users asked for."""

    code = "lease_held"


class Unavailable(MemoroseError):
    """The cluster cannot commit right now (no leader, no quorum, shutting down)."""

    status = 503
    code = "unavailable"


class CommitTimeout(MemoroseError):
    status = 504
    code = "commit_timeout"


class StartupError(MemoroseError):
    """A node cannot start as configured (a port taken, a damaged or foreign data directory, a
    weak secret). The command line prints the message, which says what to do, and exits."""

    code = "startup"


class StorageFull(MemoroseError):
    """This node's disk is full, or below its free-space floor (MEMOROSE_MIN_FREE_BYTES): it
    refuses writes at once (nothing is stored) and keeps serving reads."""

    status = 507
    code = "storage_full"


class StorageError(MemoroseError):
    """This node cannot write to its disk (an I/O error other than a full disk)."""

    status = 503
    code = "storage_error"

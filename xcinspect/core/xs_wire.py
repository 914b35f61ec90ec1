"""The xenstore wire protocol's constants (xen/include/public/io/xs_wire.h), as data.

The one definition: xcinspect's client (``platform.xenstore``) and the sim's xenstored
both use it. The sim stays an independent check of the client all the same: pyxs, a
third-party client, is tested against the sim xenstored (tests/test_sim_xenstored.py).
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("<IIII")  # struct xsd_sockmsg: type, req_id, tx_id, len
PAYLOAD_MAX = 4096  # XENSTORE_PAYLOAD_MAX: what we send, and what C xenstored replies
# oxenstored (Debian's default) does not hold its socket replies to PAYLOAD_MAX: a listing
# of 1,200 children came as one 15,600-byte DIRECTORY reply in the Xen lab (where Xen's
# own xenstore-list refuses it). Accept long replies; past this a stream is corrupt.
REPLY_MAX = 1 << 20
NUL = b"\x00"


class Op:
    """``enum xsd_sockmsg_type`` (xen/include/public/io/xs_wire.h)."""
    CONTROL = DEBUG = 0
    DIRECTORY = 1
    READ = 2
    GET_PERMS = 3
    WATCH = 4
    UNWATCH = 5
    TRANSACTION_START = 6
    TRANSACTION_END = 7
    INTRODUCE = 8
    RELEASE = 9
    GET_DOMAIN_PATH = 10
    WRITE = 11
    MKDIR = 12
    RM = 13
    SET_PERMS = 14
    WATCH_EVENT = 15
    ERROR = 16
    IS_DOMAIN_INTRODUCED = 17
    RESUME = 18
    SET_TARGET = 19
    RESET_WATCHES = 21
    DIRECTORY_PART = 22

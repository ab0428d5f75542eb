"""What crosses between the trusted engine and an isolated controller, and how.

Frames on a Unix stream socket: a 4-byte big-endian length, then the payload.

* Sandbox -> engine (untrusted input): a batch of requests ``[slot, op, args...]``, one
  per episode waiting for the engine, packed by :func:`pack_arrays` as signed 64-bit
  ints (lists carry their length) plus a JSON list of the few strings (stop reasons,
  error reports). :func:`unpack_requests` decodes any byte string into plain ints, lists
  and strings, or raises :class:`ChannelError`; the broker then validates the values.
  Other messages from the sandbox are JSON.
* Engine -> sandbox: :mod:`marshal` (fast; only the sandbox decodes it, and it is
  trusted data there).

The operation codes are the Episode protocol's actions, plus ``END`` (the controller
returned) and ``FAIL`` (it raised).
"""

from __future__ import annotations

import json
import marshal
import socket
import struct
from array import array
from typing import Any

from autotts_gym.engine.protocol import PUBLIC_ACTIONS

MAX_FRAME_BYTES = 16 * 2**20
_HEADER = struct.Struct(">I")

# Operation codes: the actions of autotts_gym.engine.protocol.PUBLIC_ACTIONS, END and FAIL.
BRANCH, CONTINUE, PROBE, PRUNE, ANSWER = 0, 1, 2, 3, 4
OPEN_AND_PROBE, OPEN_AND_PROBE_MANY, CONTINUE_AND_PROBE, CONTINUE_AND_PROBE_MANY = 5, 6, 7, 8
READ_WHOLE, READ_WHOLE_MANY, END, FAIL = 9, 10, 11, 12
OP_NAMES = (*PUBLIC_ACTIONS, "end", "fail")


class ChannelClosed(EOFError):
    """The other side closed the channel (or died)."""


class ChannelError(ValueError):
    """A frame that breaks the wire format (too large, not decodable)."""


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Send one frame."""
    if len(payload) > MAX_FRAME_BYTES:
        raise ChannelError(f"a frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def recv_frame(sock: socket.socket) -> bytes:
    """Receive one frame; :class:`ChannelClosed` at end of stream."""
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise ChannelError(f"a frame announces {size} bytes; the limit is {MAX_FRAME_BYTES}")
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed("the channel was closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send_json(sock: socket.socket, obj: Any) -> None:
    """Send ``obj`` as a JSON frame (the sandbox's side)."""
    send_frame(sock, json.dumps(obj, separators=(",", ":")).encode())


def send_data(sock: socket.socket, obj: Any) -> None:
    """Send ``obj`` as a marshal frame (the engine's side)."""
    send_frame(sock, marshal.dumps(obj))


def recv_data(sock: socket.socket) -> Any:
    """Receive a marshal frame (the sandbox's side: the content comes from the engine)."""
    return marshal.loads(recv_frame(sock))


# Arity of each operation's arguments in a packed batch: "" none, "i" one int, "L" a list
# of ints, "B" an optional list of ints, "a" an optional int (None packed as NONE), "s" a
# string (an index into the strings).
_ARGS = {
    BRANCH: "",
    CONTINUE: "i",
    PROBE: "i",
    PRUNE: "i",
    ANSWER: "as",
    OPEN_AND_PROBE: "",
    OPEN_AND_PROBE_MANY: "i",
    CONTINUE_AND_PROBE: "i",
    CONTINUE_AND_PROBE_MANY: "LB",
    READ_WHOLE: "",
    READ_WHOLE_MANY: "i",
    END: "",
    FAIL: "ss",
}
NONE = -(2**63)  # an absent optional int or list
_INT64 = (-(2**63), 2**63 - 1)


def pack_arrays(requests: list[array], strings: list[str]) -> bytes:
    """A batch of requests, each already an int64 array ``[slot, op, args...]`` (lists as
    their length then their items, an absent optional as :data:`NONE`, a string as its
    index in ``strings``), as the sandbox sends it."""
    body = b"".join(a.tobytes() for a in requests)
    return _HEADER.pack(len(body) // 8) + body + json.dumps(strings).encode()


def unpack_requests(payload: bytes) -> list[list]:
    """Decode a packed batch (the engine's side: any bytes give plain values or a
    :class:`ChannelError`)."""
    if len(payload) < _HEADER.size:
        raise ChannelError("a batch is shorter than its header")
    (n,) = _HEADER.unpack_from(payload)
    end = _HEADER.size + 8 * n
    if end > len(payload):
        raise ChannelError("a batch announces more ints than it holds")
    ints = array("q")
    ints.frombytes(payload[_HEADER.size : end])
    values = ints.tolist()
    try:
        strings = json.loads(payload[end:])
    except (ValueError, RecursionError):
        raise ChannelError("a batch's strings are not a JSON list") from None
    if type(strings) is not list or set(map(type, strings)) - {str}:
        raise ChannelError("a batch's strings are not a list of strings")
    out = []
    i = 0
    nstr = len(strings)
    try:
        while i < n:
            slot, op = values[i], values[i + 1]
            i += 2
            if op == CONTINUE_AND_PROBE_MANY:  # [count, branches..., count | NONE, bursts...]
                k = values[i]
                if not 0 <= k <= n - i - 2:
                    raise ChannelError("a list in a batch runs past its end")
                js = values[i + 1 : i + 1 + k]
                i += 1 + k
                k = values[i]
                if k == NONE:
                    bursts = None
                    i += 1
                elif not 0 <= k <= n - i - 1:
                    raise ChannelError("a list in a batch runs past its end")
                else:
                    bursts = values[i + 1 : i + 1 + k]
                    i += 1 + k
                out.append([slot, op, js, bursts])
                continue
            spec = _ARGS.get(op)
            if spec is None:
                raise ChannelError(f"unknown operation {op}")
            if not spec:
                out.append([slot, op])
            elif spec == "i":
                out.append([slot, op, values[i]])
                i += 1
            elif spec == "as":
                v, k = values[i], values[i + 1]
                out.append([slot, op, None if v == NONE else v, strings[k] if 0 <= k < nstr else ""])
                i += 2
            else:  # "ss"
                a, b = values[i], values[i + 1]
                out.append([slot, op, strings[a] if 0 <= a < nstr else "", strings[b] if 0 <= b < nstr else ""])
                i += 2
        if i != n:
            raise ChannelError("a batch ends in the middle of a request")
    except IndexError:
        raise ChannelError("a batch ends in the middle of a request") from None
    return out

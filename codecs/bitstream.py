"""The ``.lar`` container shared by every lossarena codec (zoo and ROI), read as hostile input.

Layout (all integers big-endian)::

    magic      4 bytes  b"LAR1"
    version    u8       FORMAT_VERSION
    codec      u8       length-prefixed ASCII codec id follows (e.g. "hyperprior", "roi")
    height     u32      original image height (before padding)
    width      u32      original image width
    ckpt_hash  16 bytes first 16 bytes of the checkpoint's SHA-256 (weights + config)
    meta_len   u32      length of a JSON object with codec-specific fields (e.g. rate index)
    meta       bytes
    n_streams  u16
    per stream: u16 number of strings; per string: u32 length + bytes
    crc32      u32      over everything before it

A truncated file, a bad CRC, a wrong magic or version, or a checkpoint hash that differs from the
decoder's raise :class:`BitstreamError` (an :class:`~lossarena.errors.InputError`, exit code 2).

Limits (see "Bitstream limits" in ``docs/security.md``). A CRC32 proves nothing against a file edited
on purpose, so every field is checked before it is used, and the image size before anything is
allocated for it (:class:`Limits`):

* file size at most ``Limits.max_bytes`` (1 MiB + 4 bytes per allowed pixel), checked before reading;
* ``1 ≤ height ≤ max_height`` (default 16384), ``1 ≤ width ≤ max_width`` (16384),
  ``height·width ≤ max_pixels`` (default 2^24 = 16,777,216); change them with
  ``LOSSARENA_MAX_BITSTREAM_PIXELS`` / ``LOSSARENA_MAX_BITSTREAM_WIDTH`` / ``LOSSARENA_MAX_BITSTREAM_HEIGHT`` or ``--max-pixels``;
* codec id: 1-64 characters of ``[A-Za-z0-9_.-]``;
* metadata: at most :data:`MAX_META_BYTES` of UTF-8 JSON, an object (not ``[]`` or a scalar), nesting
  depth ≤ :data:`MAX_META_DEPTH`, no duplicate keys, no ``NaN``/``Infinity``, strings ≤ 256 characters;
  each codec then checks its keys and types with :func:`check_meta`;
* at most :data:`MAX_STREAMS` streams of at most :data:`MAX_STRINGS` strings; every length within the
  file. Each codec checks the stream layout and string lengths against the shapes its model implies
  (:mod:`lossarena.codecs.entropy`) before entropy decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import struct
import zlib
from pathlib import Path

from lossarena.errors import InputError

MAGIC = b"LAR1"
FORMAT_VERSION = 1
HASH_LEN = 16

DEFAULT_MAX_PIXELS = 1 << 24  # 16.8 MP: 4096x4096, or a 12 MP camera photo
DEFAULT_MAX_SIDE = 1 << 14
MAX_META_BYTES = 4096
MAX_META_DEPTH = 4
MAX_META_STRING = 256
MAX_STREAMS = 16
MAX_STRINGS = 256
ENV_MAX_PIXELS = "LOSSARENA_MAX_BITSTREAM_PIXELS"
ENV_MAX_WIDTH = "LOSSARENA_MAX_BITSTREAM_WIDTH"
ENV_MAX_HEIGHT = "LOSSARENA_MAX_BITSTREAM_HEIGHT"
_CODEC_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class BitstreamError(InputError):
    """A ``.lar`` file that cannot be decoded (exit code 2); the message names the file and the field."""


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a positive integer, got '{value}'")
    try:
        v = int(str(value).strip())
    except ValueError:
        raise InputError(f"{what}: expected a positive integer, got '{value}'") from None
    if v < 1:
        raise InputError(f"{what}: expected a positive integer, got '{value}'")
    return v


@dataclasses.dataclass(frozen=True)
class Limits:
    """The largest image a bitstream may claim; checked before anything is allocated for it.

    Parameters
    ----------
    max_width, max_height : int
        Largest width and height in pixels (default 16384 each).
    max_pixels : int
        Largest ``width · height`` (default 2^24 = 16,777,216).
    """

    max_width: int = DEFAULT_MAX_SIDE
    max_height: int = DEFAULT_MAX_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_env(cls, max_pixels: int | str | None = None, environ=None) -> Limits:
        """Defaults, overridden by ``LOSSARENA_MAX_{PIXELS,WIDTH,HEIGHT}``, then by ``max_pixels`` (a CLI flag).

        Raises
        ------
        InputError
            A setting that is not a positive integer (the message names the variable or flag).
        """
        env = os.environ if environ is None else environ
        kw = {}
        for key, field in ((ENV_MAX_PIXELS, "max_pixels"), (ENV_MAX_WIDTH, "max_width"),
                           (ENV_MAX_HEIGHT, "max_height")):
            if env.get(key, "").strip():
                kw[field] = _positive_int(env[key], key)
        if max_pixels is not None:
            kw["max_pixels"] = _positive_int(max_pixels, "--max-pixels")
        return cls(**kw)

    @property
    def max_bytes(self) -> int:
        """Largest ``.lar`` file read: 1 MiB + 4 bytes per allowed pixel."""
        return (1 << 20) + 4 * self.max_pixels

    def check_size(self, height: int, width: int, source: str = "<bytes>") -> None:
        """Raise :class:`BitstreamError` unless ``1 ≤ height ≤ max_height``, ``1 ≤ width ≤ max_width`` and
        ``height · width ≤ max_pixels``."""
        if not (1 <= height <= self.max_height and 1 <= width <= self.max_width):
            raise BitstreamError(f"{source}: header field size: {height}x{width} is outside 1..{self.max_height} x "
                                 f"1..{self.max_width} (raise with {ENV_MAX_HEIGHT}/{ENV_MAX_WIDTH})")
        if height * width > self.max_pixels:
            raise BitstreamError(f"{source}: header field size: {height}x{width} = {height * width} pixels, more "
                                 f"than the limit of {self.max_pixels} (raise with --max-pixels or "
                                 f"{ENV_MAX_PIXELS})")


def _json_depth_ok(raw: bytes, max_depth: int) -> bool:
    """Nesting depth of JSON text ≤ ``max_depth`` (brackets inside strings ignored); linear scan."""
    depth, in_str, esc = 0, False, False
    for b in raw:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return False
        elif b in (0x5D, 0x7D):
            depth -= 1
    return True


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key '{k[:40]}'")
        out[k] = v
    return out


def _bad_constant(name):
    raise ValueError(f"{name} is not allowed")


def _long_string(obj) -> bool:
    if isinstance(obj, str):
        return len(obj) > MAX_META_STRING
    if isinstance(obj, dict):
        return any(_long_string(k) or _long_string(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_long_string(v) for v in obj)
    return False


def parse_meta(raw: bytes, source: str = "<bytes>") -> dict:
    """Header metadata: a small, shallow JSON object (see the module docstring); BitstreamError otherwise."""
    def fail(why: str):
        raise BitstreamError(f"{source}: header field meta: {why}")

    if len(raw) > MAX_META_BYTES:
        fail(f"{len(raw)} bytes, more than {MAX_META_BYTES}")
    if not _json_depth_ok(raw, MAX_META_DEPTH):
        fail(f"nested deeper than {MAX_META_DEPTH} levels")
    try:
        meta = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)
    except UnicodeDecodeError:
        fail("not UTF-8")
    except ValueError as e:  # JSONDecodeError, duplicate keys, NaN/Infinity
        fail(f"not valid JSON ({str(e)[:80]})")
    if not isinstance(meta, dict):
        fail(f"expected a JSON object, got {type(meta).__name__}")
    if _long_string(meta):
        fail(f"a string longer than {MAX_META_STRING} characters")
    return meta


# field kinds for check_meta
INT = "int"
NUMBER = "number"
INT_PAIR = "int_pair"
NUMBER_OR_NULL = "number_or_null"


def _kind_ok(v, kind: str) -> bool:
    if kind == INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == NUMBER:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == NUMBER_OR_NULL:
        return v is None or _kind_ok(v, NUMBER)
    if kind == INT_PAIR:
        return isinstance(v, list) and len(v) == 2 and all(_kind_ok(e, INT) for e in v)
    raise ValueError(f"expected a field kind of {INT}, {NUMBER}, {NUMBER_OR_NULL}, {INT_PAIR}, got {kind!r}")


def check_meta(meta, required: dict[str, str], optional: dict[str, str] | None = None, *,
               source: str = "<bytes>") -> dict:
    """Schema check of a codec's header metadata: exactly these keys, each of its kind.

    Parameters
    ----------
    meta : object
        ``Bitstream.meta``.
    required, optional : dict of str to kind
        Field name → one of :data:`INT`, :data:`NUMBER`, :data:`NUMBER_OR_NULL`, :data:`INT_PAIR`.

    Returns
    -------
    dict
        ``meta`` itself.

    Raises
    ------
    BitstreamError
        Not an object, a missing or unknown key, or a value of the wrong type (the message names it).
    """
    optional = optional or {}
    if not isinstance(meta, dict):
        raise BitstreamError(f"{source}: header field meta: expected a JSON object, got {type(meta).__name__}")
    for k in meta:
        if k not in required and k not in optional:
            raise BitstreamError(f"{source}: header field meta.{str(k)[:40]}: unknown key (expected "
                                 f"{', '.join([*required, *optional]) or 'none'})")
    for k, kind in {**required, **optional}.items():
        if k not in meta:
            if k in required:
                raise BitstreamError(f"{source}: header field meta.{k}: missing")
            continue
        if not _kind_ok(meta[k], kind):
            raise BitstreamError(f"{source}: header field meta.{k}: expected {kind.replace('_', ' ')}, "
                                 f"got {json.dumps(meta[k])[:40]}")
    return meta


@dataclasses.dataclass
class Bitstream:
    codec: str
    height: int
    width: int
    ckpt_hash: bytes
    strings: list[list[bytes]]  # one list per entropy-coded stream (y, z, ...)
    meta: dict = dataclasses.field(default_factory=dict)

    def to_bytes(self) -> bytes:
        if len(self.ckpt_hash) != HASH_LEN:
            raise ValueError(f"expected a {HASH_LEN}-byte checkpoint hash, got {len(self.ckpt_hash)} bytes")
        b = io.BytesIO()
        codec = self.codec.encode("ascii")
        meta = json.dumps(self.meta, sort_keys=True).encode("utf-8")
        b.write(MAGIC)
        b.write(struct.pack(">BB", FORMAT_VERSION, len(codec)))
        b.write(codec)
        b.write(struct.pack(">II", self.height, self.width))
        b.write(self.ckpt_hash)
        b.write(struct.pack(">I", len(meta)))
        b.write(meta)
        b.write(struct.pack(">H", len(self.strings)))
        for stream in self.strings:
            b.write(struct.pack(">H", len(stream)))
            for s in stream:
                b.write(struct.pack(">I", len(s)))
                b.write(s)
        body = b.getvalue()
        return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>", limits: Limits | None = None) -> Bitstream:
        """Parse and validate a ``.lar`` file's bytes (see the module docstring for every check).

        Parameters
        ----------
        data : bytes
            The whole file.
        source : str
            File name for messages.
        limits : Limits, optional
            Size limits (default :meth:`Limits.from_env`).

        Raises
        ------
        BitstreamError
            Anything that is not a well-formed container within the limits (one line naming the field).
        """
        limits = Limits.from_env() if limits is None else limits

        def fail(why: str):
            raise BitstreamError(f"{source}: not a valid lossarena bitstream ({why})")

        if len(data) < 4 + 2 + 8 + HASH_LEN + 4 + 2 + 4:
            fail(f"truncated: {len(data)} bytes")
        if len(data) > limits.max_bytes:
            fail(f"{len(data)} bytes, more than the {limits.max_bytes} allowed by --max-pixels/{ENV_MAX_PIXELS}")
        if data[:4] != MAGIC:
            fail(f"bad magic {bytes(data[:4])!r}, expected {MAGIC!r}")
        body, crc = data[:-4], struct.unpack(">I", data[-4:])[0]
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            fail("checksum mismatch: the file is truncated or corrupted")
        r = io.BytesIO(body)
        r.read(4)

        def take(n: int, field: str) -> bytes:
            chunk = r.read(n)
            if len(chunk) != n:
                fail(f"truncated in field {field}")
            return chunk

        version, clen = struct.unpack(">BB", take(2, "version"))
        if version != FORMAT_VERSION:
            fail(f"format version {version}, this lossarena reads version {FORMAT_VERSION}")
        codec = take(clen, "codec").decode("ascii", errors="replace")
        if not _CODEC_ID.match(codec):
            fail(f"header field codec: {codec[:64]!r} is not a codec id")
        height, width = struct.unpack(">II", take(8, "size"))
        limits.check_size(height, width, source)
        ckpt_hash = take(HASH_LEN, "ckpt_hash")
        (mlen,) = struct.unpack(">I", take(4, "meta_len"))
        if mlen > MAX_META_BYTES:
            fail(f"header field meta_len: {mlen} bytes, more than {MAX_META_BYTES}")
        meta = parse_meta(take(mlen, "meta"), source)
        (n_streams,) = struct.unpack(">H", take(2, "n_streams"))
        if n_streams > MAX_STREAMS:
            fail(f"header field n_streams: {n_streams}, more than {MAX_STREAMS}")
        strings = []
        for i in range(n_streams):
            (n,) = struct.unpack(">H", take(2, f"stream {i} count"))
            if n > MAX_STRINGS:
                fail(f"stream {i}: {n} strings, more than {MAX_STRINGS}")
            stream = []
            for j in range(n):
                (ln,) = struct.unpack(">I", take(4, f"stream {i} string {j} length"))
                stream.append(take(ln, f"stream {i} string {j}"))
            strings.append(stream)
        if r.read(1):
            fail("trailing bytes")
        return cls(codec, height, width, ckpt_hash, strings, meta)

    def check_checkpoint(self, ckpt_hash: bytes, *, source: str = "<bytes>", ckpt: str = "the checkpoint"):
        if ckpt_hash[:HASH_LEN] != self.ckpt_hash:
            raise BitstreamError(
                f"{source}: was encoded with checkpoint {self.ckpt_hash.hex()}, but {ckpt} is "
                f"{ckpt_hash[:HASH_LEN].hex()}; decode with the checkpoint that encoded it"
            )

    def write(self, path: str | Path) -> int:
        data = self.to_bytes()
        Path(path).write_bytes(data)
        return len(data)

    @classmethod
    def read(cls, path: str | Path, *, limits: Limits | None = None) -> Bitstream:
        """Read and validate a ``.lar`` file; a file over ``limits.max_bytes`` is refused unread.

        Raises
        ------
        BitstreamError
            Unreadable, too large, or not a valid container (see :meth:`from_bytes`).
        """
        path = Path(path)
        limits = Limits.from_env() if limits is None else limits
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > limits.max_bytes:
                    raise BitstreamError(f"{path}: not a valid lossarena bitstream ({size} bytes, more than the "
                                         f"{limits.max_bytes} allowed by --max-pixels/{ENV_MAX_PIXELS})")
                data = f.read(limits.max_bytes + 1)
        except OSError as e:
            raise BitstreamError(f"{path}: cannot read ({e.strerror})") from None
        return cls.from_bytes(data, source=str(path), limits=limits)


def file_hash(path: str | Path) -> bytes:
    """First 16 bytes of a file's SHA-256 (what a bitstream records for its checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()[:HASH_LEN]

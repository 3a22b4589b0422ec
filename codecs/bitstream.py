"""The ``.lar`` container shared by every lossarena codec (zoo and ROI).

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
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

from lossarena.errors import InputError

MAGIC = b"LAR1"
FORMAT_VERSION = 1
HASH_LEN = 16


class BitstreamError(InputError):
    pass


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
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Bitstream:
        def fail(why: str):
            raise BitstreamError(f"{source}: not a valid lossarena bitstream ({why})")

        if len(data) < 4 + 2 + 8 + HASH_LEN + 4 + 2 + 4:
            fail(f"truncated: {len(data)} bytes")
        if data[:4] != MAGIC:
            fail(f"bad magic {data[:4]!r}, expected {MAGIC!r}")
        body, crc = data[:-4], struct.unpack(">I", data[-4:])[0]
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            fail("checksum mismatch: the file is truncated or corrupted")
        r = io.BytesIO(body)
        r.read(4)

        def take(n: int) -> bytes:
            chunk = r.read(n)
            if len(chunk) != n:
                fail("truncated")
            return chunk

        version, clen = struct.unpack(">BB", take(2))
        if version != FORMAT_VERSION:
            fail(f"format version {version}, this lossarena reads version {FORMAT_VERSION}")
        codec = take(clen).decode("ascii", errors="replace")
        height, width = struct.unpack(">II", take(8))
        ckpt_hash = take(HASH_LEN)
        (mlen,) = struct.unpack(">I", take(4))
        try:
            meta = json.loads(take(mlen).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            fail("unreadable header metadata")
        (n_streams,) = struct.unpack(">H", take(2))
        strings = []
        for _ in range(n_streams):
            (n,) = struct.unpack(">H", take(2))
            stream = []
            for _ in range(n):
                (ln,) = struct.unpack(">I", take(4))
                stream.append(take(ln))
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
    def read(cls, path: str | Path) -> Bitstream:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BitstreamError(f"{path}: cannot read ({e.strerror})") from None
        return cls.from_bytes(data, source=str(path))


def file_hash(path: str | Path) -> bytes:
    """First 16 bytes of a file's SHA-256 (what a bitstream records for its checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()[:HASH_LEN]

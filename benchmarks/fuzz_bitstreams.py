"""Fuzz the ``.lar`` decoders with crafted files whose CRC32 is valid (issue 12, item 5, bitstreams).

Every case is a valid bitstream of a small stand-in checkpoint (untrained weights: decode robustness
does not depend on training; labelled as such) mutated on purpose — header fields, metadata, stream and
string counts, length fields, truncation, extension, random payload bytes, crafted rANS states, huge
claimed sizes — and re-sealed with a correct CRC32, as anyone editing a file on purpose can do.

Each case goes through the command-line decode path (``lossarena codecs decompress`` /
``lossarena roi decompress``, in-process ``main(argv)``) inside worker **subprocesses** that the
parent watches: a per-case limit on the worker's CPU time (hang), a resident-memory limit polled every 20 ms (memory), death
by a signal (crash), an exit code other than 0/2 or a message of more than one line (traceback), and an
exit-0 image that differs between two decodes (nondeterministic; rc-0 cases are also re-decoded by a
fresh worker process at the end and compared across processes).

Usage::

    python benchmarks/fuzz_bitstreams.py --cases 1000 --seed 0            # both codecs -> RESULTS_fuzz_bitstreams.md
    python benchmarks/fuzz_bitstreams.py --speed                          # checked vs C++ rANS decode speed
    python benchmarks/fuzz_bitstreams.py --cases 200 --decoder compressai # the unchecked C++ decoder, for contrast

``run(n_cases, seed)`` returns the figures as a dict (for ``benchmarks/fuzz.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS_fuzz_bitstreams.md"
FUZZ_MAX_PIXELS = 1 << 18  # the limit the fuzz runs decode under (512x512): refused claims stay cheap
CASE_TIMEOUT_S = 60.0  # CPU seconds of the worker per case (both decodes)
RSS_LIMIT_MB = 3072
HYPER_SIZES = [(64, 64), (48, 80), (96, 128)]
ROI_SIZES = [(64, 64), (40, 128)]


# ---------------------------------------------------------------------------------- stand-in checkpoints
def hyperprior_standin(folder: Path) -> Path:
    """An untrained ScaleHyperprior N=16, M=24 (seeded) saved as a zoo checkpoint: a stand-in for fuzzing."""
    import torch
    from lossarena.codecs.model import build_model, save_checkpoint

    path = Path(folder) / "hyperprior-standin.pt"
    if not path.exists():
        torch.manual_seed(0)
        cfg = {"codec": "hyperprior", "architecture": {"name": "bmshj2018-hyperprior", "N": 16, "M": 24},
               "loss": "mse", "lmbda": 0.0, "note": "untrained seeded stand-in for bitstream fuzzing"}
        save_checkpoint(path, build_model(16, 24), cfg)
    return path


def roi_standin(folder: Path) -> Path:
    """An untrained ROI codec N=M=16, K=3, 2 rates (seeded) saved as an ROI checkpoint: a stand-in."""
    import torch
    from lossarena.codecs.roi.checkpoint import build_model, save_checkpoint
    from lossarena.codecs.roi.config import load_config

    path = Path(folder) / "roi-standin.pt"
    if not path.exists():
        torch.manual_seed(0)
        cfg = load_config({"name": "roi-fuzz-standin", "lambdas": [20, 10], "saliency": "spectral",
                           "model": {"N": 16, "M": 16, "K": 3, "n_rates": 2, "protected": 4, "attn_blocks": 1}})
        save_checkpoint(path, build_model(cfg), cfg, stage=1, step=0)
    return path


def _image(h: int, w: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(8 * (xx + yy))])[None]
    return (0.8 * base + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def seed_streams(codec: str, ckpt: Path) -> list[bytes]:
    """Valid ``.lar`` files of the stand-in at a few sizes (what the mutations start from)."""
    import torch

    out = []
    if codec == "hyperprior":
        from lossarena.codecs.coder import HyperpriorCodec

        c = HyperpriorCodec(ckpt)
        for i, (h, w) in enumerate(HYPER_SIZES):
            out.append(c.compress(_image(h, w, i)).to_bytes())
    else:
        from lossarena.codecs.roi.codec import RoiCodec

        c = RoiCodec(ckpt)
        for i, (h, w) in enumerate(ROI_SIZES):
            rm = torch.full((1, 1, h, w), 0.5)
            out.append(c.compress(_image(h, w, i), float(i % 2), rm2d=rm).to_bytes())
    return out


# ---------------------------------------------------------------------------------- the container, by hand
def parse(data: bytes) -> dict:
    """Fields of a valid ``.lar`` file (no checks: the seeds are valid)."""
    p = 4
    version, clen = data[p], data[p + 1]
    p += 2
    codec = data[p:p + clen]
    p += clen
    h, w = struct.unpack(">II", data[p:p + 8])
    p += 8
    hsh = data[p:p + 16]
    p += 16
    (mlen,) = struct.unpack(">I", data[p:p + 4])
    p += 4
    meta = data[p:p + mlen]
    p += mlen
    (ns,) = struct.unpack(">H", data[p:p + 2])
    p += 2
    streams = []
    for _ in range(ns):
        (n,) = struct.unpack(">H", data[p:p + 2])
        p += 2
        st = []
        for _ in range(n):
            (ln,) = struct.unpack(">I", data[p:p + 4])
            p += 4
            st.append(data[p:p + ln])
            p += ln
        streams.append(st)
    return {"magic": data[:4], "version": version, "codec": codec, "h": h, "w": w, "hash": hsh, "meta": meta,
            "streams": streams}


def serialize(f: dict, *, length_delta: dict | None = None) -> bytes:
    """Fields back to bytes with a correct CRC32; ``length_delta[(i, j)]`` makes a length field lie."""
    length_delta = length_delta or {}
    b = io.BytesIO()
    b.write(f["magic"])
    b.write(bytes([f["version"] & 0xFF, len(f["codec"]) & 0xFF]))
    b.write(f["codec"])
    b.write(struct.pack(">II", f["h"] & 0xFFFFFFFF, f["w"] & 0xFFFFFFFF))
    b.write(f["hash"])
    b.write(struct.pack(">I", len(f["meta"])))
    b.write(f["meta"])
    b.write(struct.pack(">H", len(f["streams"]) & 0xFFFF))
    for i, st in enumerate(f["streams"]):
        b.write(struct.pack(">H", len(st) & 0xFFFF))
        for j, s in enumerate(st):
            b.write(struct.pack(">I", (len(s) + length_delta.get((i, j), 0)) & 0xFFFFFFFF))
            b.write(s)
    return seal(b.getvalue())


def seal(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


# ---------------------------------------------------------------------------------- mutations
HOSTILE_META = [
    b"[]", b"null", b"1", b'"x"', b"[" * 3000 + b"]" * 3000, b"{" * 10 + b"}" * 10, b'{"a": NaN}',
    b'{"a": Infinity}', b'{"a": 1, "a": 2}', b"\xff\xfe\x00", b"{", b'{"z_shape": "12"}', b'{"z_shape": [1]}',
    b'{"z_shape": [1e400, 1]}', b'{"z_shape": [-1, -1]}', b'{"z_shape": [99999999999999999999, 1]}',
    b'{"z_shape": [true, false]}', b'{"rate_index": -1, "z_shape": [1, 1]}', b'{"rate_index": 1e300, "z_shape": [1, 1]}',
    b'{"rate_index": "0", "z_shape": [1, 1]}', b'{"rate_index": true, "z_shape": [1, 1]}', b'{"rate_index": 0}',
    b'{"rate_index": 0, "z_shape": [1, 1], "alpha": "x"}', b'{"rate_index": 0, "z_shape": [1, 1], "extra": 1}',
    b'{"s": "' + b"A" * 5000 + b'"}', b'{"k": {"k": {"k": {"k": {"k": 1}}}}}', b"{}", b" " * 4097,
]
SPECIAL_SIZES = [0, 1, 2, 63, 64, 65, 127, 128, 511, 512, 513, 1024, 4096, 16384, 16385, 65535, 1 << 31,
                 (1 << 32) - 1]
SPECIAL_STATES = [0, 1, 1 << 31, (1 << 31) - 1, (1 << 32) - 1, (1 << 63), (1 << 64) - 1, 0xF << 16 | 0xFFFF]


def _rand_bytes(rng, n: int) -> bytes:
    return rng.integers(0, 256, max(0, int(n)), dtype=np.uint8).tobytes()


def _pick_string(rng, f):
    cand = [(i, j) for i, st in enumerate(f["streams"]) for j in range(len(st))]
    if not cand:
        return None
    return cand[int(rng.integers(len(cand)))]


def _set_string(f, ij, s):
    i, j = ij
    f["streams"][i][j] = s


def mutate(rng, seeds: list[bytes], others: list[bytes]) -> tuple[str, bytes]:
    """One crafted file: 1-3 structural mutations of a seed, re-sealed with a valid CRC32."""
    base = seeds[int(rng.integers(len(seeds)))]
    f = parse(base)
    f["streams"] = [list(s) for s in f["streams"]]
    ops, delta = [], {}
    for _ in range(int(rng.integers(1, 4))):
        op = str(rng.choice(OPS))
        ops.append(op)
        if op == "size":
            f["h" if rng.random() < 0.5 else "w"] = int(rng.choice(SPECIAL_SIZES))
            if rng.random() < 0.5:
                f["h"], f["w"] = int(rng.choice(SPECIAL_SIZES)), int(rng.choice(SPECIAL_SIZES))
        elif op == "size_plausible":  # within the limit, but not what the streams were coded for
            f["h"], f["w"] = int(rng.integers(1, 513)), int(rng.integers(1, 513))
        elif op == "codec":
            f["codec"] = [b"", b"roi", b"hyperprior", b"x" * 200, b"\xff\x00ab", _rand_bytes(rng, 8)][
                int(rng.integers(6))]
        elif op == "version":
            f["version"] = int(rng.choice([0, 2, 255]))
        elif op == "hash":
            f["hash"] = _rand_bytes(rng, 16)
        elif op == "meta":
            f["meta"] = HOSTILE_META[int(rng.integers(len(HOSTILE_META)))]
        elif op == "meta_fields":  # the seed's own metadata with one value changed
            try:
                m = json.loads(f["meta"] or b"{}")
            except ValueError:
                m = {}
            if not isinstance(m, dict):
                m = {}
            key = str(rng.choice(["z_shape", "rate_index", "alpha", "other"]))
            m[key] = [[int(rng.integers(-2, 9)), int(rng.integers(-2, 9))], float(rng.normal() * 3), None,
                      int(rng.integers(-(1 << 40), 1 << 40)), "s", []][int(rng.integers(6))]
            f["meta"] = json.dumps(m).encode()
        elif op == "streams":
            k = int(rng.integers(5))
            if k == 0 and f["streams"]:
                f["streams"].pop(int(rng.integers(len(f["streams"]))))
            elif k == 1:
                f["streams"].append([_rand_bytes(rng, 16)])
            elif k == 2 and len(f["streams"]) >= 2:
                f["streams"][0], f["streams"][1] = f["streams"][1], f["streams"][0]
            elif k == 3 and f["streams"]:
                f["streams"][int(rng.integers(len(f["streams"])))] = []
            else:
                f["streams"] = [[] for _ in range(int(rng.integers(0, 20)))]
        elif op == "strings":
            if f["streams"]:
                st = f["streams"][int(rng.integers(len(f["streams"])))]
                if st and rng.random() < 0.5:
                    st.pop()
                else:
                    st.append(_rand_bytes(rng, 4 * int(rng.integers(0, 8))))
        elif op == "length_field":
            ij = _pick_string(rng, f)
            if ij is not None:
                delta[ij] = int(rng.choice([-8, -4, -1, 1, 3, 4, 1000, 1 << 31, -(1 << 20)]))
        elif op in ("truncate", "extend", "flip", "random_payload", "state", "tail", "splice"):
            ij = _pick_string(rng, f)
            if ij is None:
                continue
            s = f["streams"][ij[0]][ij[1]]
            if op == "truncate":
                s = s[: int(rng.integers(0, max(1, len(s))))]
            elif op == "extend":
                s = s + _rand_bytes(rng, int(rng.choice([1, 4, 8, 64, 1000])))
            elif op == "flip":
                b = bytearray(s)
                for _ in range(int(rng.integers(1, 9))):
                    if b:
                        b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
                s = bytes(b)
            elif op == "random_payload":
                n = int(rng.integers(0, 200))
                s = _rand_bytes(rng, 4 * n if rng.random() < 0.7 else n)
            elif op == "state":
                v = SPECIAL_STATES[int(rng.integers(len(SPECIAL_STATES)))] if rng.random() < 0.7 else \
                    int(rng.integers(0, 1 << 63))
                s = struct.pack("<Q", v) + s[8:]
            elif op == "tail":
                k = min(len(s), int(rng.integers(1, 17)))
                s = s[: len(s) - k] + _rand_bytes(rng, k)
            elif op == "splice":  # a string of another valid file (other size or codec)
                g = parse(others[int(rng.integers(len(others)))])
                pool = [x for st in g["streams"] for x in st]
                s = pool[int(rng.integers(len(pool)))] if pool else s
            _set_string(f, ij, s)
        elif op == "file_truncate":
            data = serialize(f, length_delta=delta)[:-4]
            return "+".join(ops), seal(data[: int(rng.integers(0, len(data)))])
        elif op == "file_extend":
            data = serialize(f, length_delta=delta)[:-4]
            return "+".join(ops), seal(data + _rand_bytes(rng, int(rng.integers(1, 64))))
    return "+".join(ops), serialize(f, length_delta=delta)


OPS = ["size", "size_plausible", "codec", "version", "hash", "meta", "meta_fields", "streams", "strings",
       "length_field", "truncate", "extend", "flip", "flip", "random_payload", "random_payload", "state", "state",
       "tail", "tail", "splice", "file_truncate", "file_extend"]


def make_cases(codec: str, ckpt: Path, n: int, seed: int, other_ckpt: Path | None = None) -> list[tuple[str, bytes]]:
    """``n`` crafted files (seeded): the valid seeds themselves first, then mutations."""
    seeds = seed_streams(codec, ckpt)
    others = seeds + (seed_streams("roi" if codec == "hyperprior" else "hyperprior", other_ckpt) if other_ckpt else [])
    rng = np.random.default_rng(seed)
    cases = [("valid", s) for s in seeds]
    while len(cases) < n:
        cases.append(mutate(rng, seeds, others))
    return cases[:n]


# ---------------------------------------------------------------------------------- decoding one case
def decode_cli(codec: str, ckpt: Path, lar: Path, out: Path, max_pixels: int = FUZZ_MAX_PIXELS) -> tuple[int, str]:
    """``lossarena <codecs|roi> decompress`` in-process: ``(exit code, stderr)``; a traceback is rc 1."""
    import traceback

    from lossarena.pipeline.cli import main

    tool = "codecs" if codec == "hyperprior" else "roi"
    err, sink = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sink):
        try:
            rc = main(["-q", tool, "decompress", str(ckpt), str(lar), str(out), "--max-pixels", str(max_pixels)])
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - an escaping exception is what the fuzzer counts
            traceback.print_exc(file=err)
            rc = 1
    return rc, err.getvalue()


def decode_unchecked(codec: str, ckpt: Path, lar: Path, out: Path, max_pixels: int = FUZZ_MAX_PIXELS):
    """The pre-issue-12 path for contrast: container checks, then CompressAI's unchecked C++ rANS."""
    import traceback

    from lossarena.codecs.bitstream import Bitstream, Limits
    from lossarena.data.images import save_image

    from lossarena.errors import LossarenaError

    err = io.StringIO()
    try:
        bs = Bitstream.read(lar, limits=Limits(max_pixels=max_pixels))
        if codec == "hyperprior":
            from lossarena.codecs.coder import HyperpriorCodec

            key = ("hyperprior", str(ckpt))
            if key not in _CACHE:
                _CACHE[key] = HyperpriorCodec(ckpt)
            c = _CACHE[key]
            h, w = bs.height, bs.width
            zh, zw = -(-h // 64), -(-w // 64)
            if len(bs.strings) != 2 or any(len(s) != 1 for s in bs.strings):
                raise LossarenaError("layout")
            x = c.model.decompress(bs.strings, (zh, zw))["x_hat"][..., :h, :w]
        else:
            raise LossarenaError("--decoder compressai is measured for the hyperprior only")
        save_image(x, out)
        return 0, ""
    except LossarenaError as e:
        return 2, f"error: {e}\n"
    except BaseException:  # noqa: BLE001
        traceback.print_exc(file=err)
        return 1, err.getvalue()


_CACHE: dict = {}


# ---------------------------------------------------------------------------------- worker process
def _worker(codec: str, ckpt: str, decoder: str) -> None:
    """Read case paths on stdin, decode each twice, answer one JSON line per case on the real stdout."""
    import resource

    import torch

    torch.set_num_threads(1)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    fn = decode_cli if decoder == "checked" else decode_unchecked
    tmpdir = tempfile.TemporaryDirectory(prefix="lar-fuzz-worker-")
    tmp = Path(tmpdir.name)
    # warm up before the first timed case: the lazy imports (torch, CompressAI, the CLI's tools) take tens
    # of seconds on a loaded machine and must not count against a case's timeout
    import lossarena.codecs.coder  # noqa: F401
    import lossarena.codecs.roi.codec  # noqa: F401
    from lossarena.pipeline.cli import register_learned_metrics

    register_learned_metrics()
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        lar = Path(line.strip())
        res = {}
        digests = []
        t0 = time.perf_counter()
        for k in range(2):
            png = tmp / f"out{k}.png"
            png.unlink(missing_ok=True)
            rc, err = fn(codec, Path(ckpt), lar, png)
            res.setdefault("rc", rc)
            if rc != res["rc"]:
                res["rc_changed"] = True
            res.setdefault("err", err.strip()[-2000:])
            digests.append(hashlib.sha256(png.read_bytes()).hexdigest() if rc == 0 and png.exists() else None)
            if rc != 0:
                break
        res["seconds"] = time.perf_counter() - t0
        res["digests"] = digests
        res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.write(json.dumps(res) + "\n")
    tmpdir.cleanup()


class Worker:
    def __init__(self, codec: str, ckpt: Path, decoder: str):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", codec, str(ckpt),
                                   "--decoder", decoder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env)
        self.peak_mb = 0.0
        msg = self._read(600.0)
        if not msg or not msg.get("ready"):
            raise RuntimeError(f"fuzz worker did not start ({msg})")

    def _rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.p.pid}/status") as fh:
                for ln in fh:
                    if ln.startswith("VmRSS:"):
                        return int(ln.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _cpu_s(self) -> float:
        try:
            with open(f"/proc/{self.p.pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def _read(self, timeout: float, rss_limit_mb: float | None = None):
        """A reply, or a hang after ``timeout`` s of the worker's **CPU** time (wall time is meaningless on a
        machine shared by many jobs; a wall limit of 20× the timeout still applies)."""
        t0, c0 = time.monotonic(), self._cpu_s()
        while time.monotonic() - t0 < 20 * timeout and self._cpu_s() - c0 < timeout:
            r, _, _ = select.select([self.p.stdout], [], [], 0.02)
            rss = self._rss_mb()
            self.peak_mb = max(self.peak_mb, rss)
            if rss_limit_mb and rss > rss_limit_mb:
                self.kill()
                return {"memory": True}
            if r:
                line = self.p.stdout.readline()
                if not line:
                    self.p.wait()
                    return {"signal": -self.p.returncode if self.p.returncode and self.p.returncode < 0 else None,
                            "exit": self.p.returncode}
                return json.loads(line)
            if self.p.poll() is not None:
                return {"signal": -self.p.returncode if self.p.returncode < 0 else None, "exit": self.p.returncode}
        self.kill()
        return {"hang": True}

    def run(self, lar: Path, timeout: float, rss_limit_mb: float):
        self.p.stdin.write(f"{lar}\n")
        self.p.stdin.flush()
        return self._read(timeout, rss_limit_mb)

    def alive(self) -> bool:
        return self.p.poll() is None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


# ---------------------------------------------------------------------------------- campaign
def fuzz_codec(codec: str, n_cases: int, seed: int, folder: Path, decoder: str = "checked",
               timeout: float = CASE_TIMEOUT_S, rss_limit_mb: float = RSS_LIMIT_MB, recheck: int = 50,
               progress_json: str | None = None) -> dict:
    """Run ``n_cases`` crafted files of one codec through worker subprocesses; the figures as a dict."""
    ckpt = hyperprior_standin(folder) if codec == "hyperprior" else roi_standin(folder)
    other = roi_standin(folder) if codec == "hyperprior" else hyperprior_standin(folder)
    cases = make_cases(codec, ckpt, n_cases, seed, other)
    cdir = folder / f"cases-{codec}"
    cdir.mkdir(parents=True, exist_ok=True)
    stats = {"codec": codec, "decoder": decoder, "cases": 0, "ok": 0, "clean_errors": 0, "crashes": 0,
             "tracebacks": 0, "hangs": 0, "memory": 0, "nondeterministic": 0, "multi_line_errors": 0,
             "peak_rss_mb": 0.0, "max_case_s": 0.0, "failures": [], "ops": {}}
    digests = {}
    t_start = time.perf_counter()
    w = Worker(codec, ckpt, decoder)
    for k, (ops, data) in enumerate(cases):
        if progress_json and k % 25 == 0:
            Path(progress_json).write_text(json.dumps([dict(stats, partial=True)], indent=1))
        lar = cdir / f"case{k:05d}.lar"
        lar.write_bytes(data)
        if not w.alive():
            stats["peak_rss_mb"] = max(stats["peak_rss_mb"], w.peak_mb)
            w = Worker(codec, ckpt, decoder)
        res = w.run(lar, timeout, rss_limit_mb)
        stats["cases"] += 1
        kind = None
        if res.get("hang"):
            kind = "hangs"
        elif res.get("memory"):
            kind = "memory"
        elif "rc" not in res:
            kind = "crashes"
        elif res["rc"] not in (0, 2) or res.get("rc_changed"):
            kind = "tracebacks"
        elif res["rc"] == 2:
            if len(res["err"].splitlines()) != 1:
                kind = "multi_line_errors"
            else:
                stats["clean_errors"] += 1
        else:
            d = res["digests"]
            if len(d) != 2 or d[0] is None or d[0] != d[1]:
                kind = "nondeterministic"
            else:
                stats["ok"] += 1
                digests[k] = d[0]
        if "seconds" in res:
            stats["max_case_s"] = max(stats["max_case_s"], res["seconds"])
        stats["peak_rss_mb"] = max(stats["peak_rss_mb"], float(res.get("maxrss_mb", 0.0)), w.peak_mb)
        stats["ops"][ops.split("+")[0]] = stats["ops"].get(ops.split("+")[0], 0) + 1
        if kind:
            stats[kind] += 1
            if len(stats["failures"]) < 20:
                stats["failures"].append({"case": k, "ops": ops, "kind": kind, "detail": str(res)[:300]})
            if not w.alive():
                w = Worker(codec, ckpt, decoder)
    stats["peak_rss_mb"] = max(stats["peak_rss_mb"], w.peak_mb)
    w.close()
    # cross-process determinism: a fresh worker re-decodes some exit-0 cases
    rng = np.random.default_rng(seed + 1)
    ks = sorted(digests)
    pick = [ks[i] for i in rng.permutation(len(ks))[:recheck]] if ks else []
    if pick:
        w = Worker(codec, ckpt, decoder)
        for k in pick:
            res = w.run(cdir / f"case{k:05d}.lar", timeout, rss_limit_mb)
            if res.get("digests", [None])[0] != digests[k]:
                stats["nondeterministic"] += 1
                stats["failures"].append({"case": k, "ops": cases[k][0], "kind": "nondeterministic (across processes)"})
            if not w.alive():
                w = Worker(codec, ckpt, decoder)
        stats["peak_rss_mb"] = max(stats["peak_rss_mb"], w.peak_mb)
        w.close()
    stats["rechecked_across_processes"] = len(pick)
    stats["wall_s"] = time.perf_counter() - t_start
    return stats


def run(n_cases: int, seed: int) -> dict:
    """Fuzz both codecs (``n_cases`` each, checked decoder): ``{"hyperprior": stats, "roi": stats}``.

    Each stats dict has ``cases, ok, clean_errors, crashes, tracebacks, hangs, memory, nondeterministic,
    multi_line_errors, peak_rss_mb, max_case_s, wall_s, failures`` (see the module docstring).
    """
    with tempfile.TemporaryDirectory(prefix="lar-fuzz-") as d:
        return {c: fuzz_codec(c, n_cases, seed, Path(d)) for c in ("hyperprior", "roi")}


# ---------------------------------------------------------------------------------- speed: checked vs C++
def speed(rounds: int = 3, sizes=((256, 256), (512, 768)), full_rounds: int = 1) -> list[dict]:
    """Decode time: checked Python rANS vs CompressAI's C++ ``RansDecoder``, side by side, same strings.

    A seeded, untrained ScaleHyperprior N=128, M=192 (the zoo's quality-3 size) whose ``h_s`` output bias
    is set to scales of 0.5-6 (an untrained model predicts near-zero scales and codes y in 8 bytes, which
    would flatter the decoder); z is its real stream, y is coded by CompressAI from symbols drawn from
    the predicted Gaussians, so y carries a realistic 1-3 bits per symbol. Both the entropy decode of y
    alone (tables, indexes prepared) and the whole ``decompress`` are timed (median of ``rounds``), and
    both decoders' outputs are asserted equal. The entropy decode is timed over ``rounds`` (median), the
    whole ``decompress`` (dominated by the synthesis transform) over ``full_rounds``. Times are **CPU
    seconds** of this process at one torch thread (``time.process_time``): wall time on a machine shared
    with other jobs measures the other jobs.
    """
    import torch
    from compressai.ans import RansDecoder
    from compressai.models.base import SCALES_MAX, SCALES_MIN, get_scale_table
    from lossarena.codecs.entropy import checked_hyperprior_decompress, decode_with_indexes
    from lossarena.codecs.model import build_model

    torch.set_num_threads(1)  # CPU time of one thread: comparable on a machine shared with other jobs
    torch.manual_seed(0)
    m = build_model(128, 192).eval()
    with torch.no_grad():
        m.h_s[-2].bias.copy_(torch.rand(m.h_s[-2].bias.shape) * 5.5 + 0.5)
    m.update(scale_table=get_scale_table(SCALES_MIN, SCALES_MAX, 256), force=True)
    gc = m.gaussian_conditional
    rows = []
    for h, w in sizes:
        with torch.no_grad():
            out = m.compress(_image(h, w))
            zshape = out["shape"]
            z_hat = m.entropy_bottleneck.decompress(out["strings"][1], zshape)
            scales = m.h_s(z_hat)
            idx_t = gc.build_indexes(scales)
            y_sym = torch.round(torch.randn(scales.shape, generator=torch.Generator().manual_seed(h + w)) * scales)
            y_str = gc.compress(y_sym, idx_t)
        strings = [y_str, out["strings"][1]]
        idx = idx_t[0].reshape(-1).int().tolist()
        cdf = gc._quantized_cdf.tolist()
        lens = gc._cdf_length.reshape(-1).int().tolist()
        offs = gc._offset.reshape(-1).int().tolist()
        y = y_str[0]
        t_c, t_p, t_fc, t_fp = [], [], [], []
        for _ in range(rounds):
            t0 = time.process_time()
            a = RansDecoder().decode_with_indexes(y, idx, cdf, lens, offs)
            t1 = time.process_time()
            b = decode_with_indexes(y, idx, cdf, lens, offs, max_abs=None)
            t2 = time.process_time()
            assert a == b == y_sym[0].reshape(-1).int().tolist()
            t_c.append(t1 - t0)
            t_p.append(t2 - t1)
        for _ in range(full_rounds):
            with torch.no_grad():
                t0 = time.process_time()
                xa = m.decompress(strings, zshape)["x_hat"]
                t1 = time.process_time()
                xb = checked_hyperprior_decompress(m, strings, zshape)
                t2 = time.process_time()
            assert torch.equal(xa, xb)
            t_fc.append(t1 - t0)
            t_fp.append(t2 - t1)

        def med(v):
            return float(np.median(v))

        rows.append({"size": f"{h}x{w}", "symbols": len(idx), "y_bytes": len(y),
                     "bits_per_symbol": len(y) * 8 / len(idx), "cpp_s": med(t_c), "checked_s": med(t_p),
                     "ratio": med(t_p) / med(t_c), "us_per_symbol": med(t_p) / len(idx) * 1e6,
                     "decompress_cpp_s": med(t_fc), "decompress_checked_s": med(t_fp),
                     "decompress_ratio": med(t_fp) / med(t_fc)})
        print(rows[-1], flush=True)
    return rows


# ---------------------------------------------------------------------------------- report
def _table(results: list[dict]) -> str:
    cols = ["codec", "decoder", "cases", "ok", "clean_errors", "crashes", "tracebacks", "hangs", "memory",
            "nondeterministic", "multi_line_errors", "rechecked_across_processes", "peak_rss_mb", "max_case_s",
            "wall_s"]
    lines = ["| " + " | ".join(c.replace("_", " ") for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        cells = [f"{r[c]:.1f}" if isinstance(r.get(c), float) else str(r.get(c, "–")) for c in cols]
        if r.get("partial"):  # figures written while running
            cells[2] += " (stopped)"
            if not r.get("peak_rss_mb"):  # older runs folded peak RSS in at the end only
                cells[cols.index("peak_rss_mb")] = "–"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(fuzz: list[dict], speed_rows: list[dict], path: Path = RESULTS, note: str = "") -> None:
    """RESULTS_fuzz_bitstreams.md from the fuzz figures and the speed rows."""
    load = os.getloadavg()[0]
    lines = ["# Hostile bitstreams: fuzzing and the checked rANS decoder", "",
             "Crafted `.lar` files with a **valid CRC32** (mutations of header fields, metadata, stream and string "
             "counts, length fields, truncation, extension, random payload bytes, crafted rANS states, huge claimed "
             "sizes; `benchmarks/fuzz_bitstreams.py`), decoded through `lossarena codecs decompress` / "
             "`lossarena roi decompress` (in-process `main(argv)`) in watched worker subprocesses: "
             f"{CASE_TIMEOUT_S:g} s of worker CPU time per case (hang), {RSS_LIMIT_MB} MB resident (memory), death by a signal (crash), "
             "exit other than 0/2 (traceback), a message of more than one line, and exit-0 images compared over two "
             "decodes in the worker and again in a fresh process (nondeterministic). `--max-pixels "
             f"{FUZZ_MAX_PIXELS}` during the run. Checkpoints: **untrained seeded stand-ins** (hyperprior N=16, "
             "M=24; ROI N=M=16, K=3, 2 rates) — decode robustness does not depend on training. "
             f"2 shared cores (load average {load:.0f} when this report was written).", ""]
    if note:
        lines += [note, ""]
    lines += ["`nice -n 10 .venv/bin/python benchmarks/fuzz_bitstreams.py --cases 1000 --seed 0 --codecs CODEC`", "",
              _table(fuzz), ""]
    for r in fuzz:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items(), key=lambda kv: -kv[1]))
        lines.append(f"- {r['codec']}: first mutation of each case: {ops}.")
        for f in r["failures"][:10]:
            lines.append(f"  - failure: case {f['case']} ({f['ops']}): {f['kind']}")
    if speed_rows:
        lines += ["", "## Decode speed: checked Python rANS vs CompressAI's C++ decoder", "",
                  "`nice -n 10 .venv/bin/python benchmarks/fuzz_bitstreams.py --speed`: ScaleHyperprior N=128, M=192 "
                  "(untrained, seeded; y coded by CompressAI from symbols drawn from the predicted Gaussians, see "
                  "`speed()`), same strings and tables for both decoders, outputs asserted identical. CPU seconds "
                  "at one thread. Entropy decode of y: median of 3 rounds; whole `decompress` (z + y + synthesis): "
                  "1 round.", "",
                  "| image | y symbols | y bytes | bits/symbol | C++ s | checked s | × C++ | µs/symbol "
                  "| decompress C++ s | decompress checked s | × C++ |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in speed_rows:
            lines.append(f"| {r['size']} | {r['symbols']} | {r['y_bytes']} | {r['bits_per_symbol']:.2f} | "
                         f"{r['cpp_s']:.4f} | {r['checked_s']:.4f} | {r['ratio']:.2f} | {r['us_per_symbol']:.2f} | "
                         f"{r['decompress_cpp_s']:.2f} | {r['decompress_checked_s']:.2f} | "
                         f"{r['decompress_ratio']:.2f} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="crafted files per codec (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--codecs", default="hyperprior,roi")
    ap.add_argument("--decoder", default="checked", choices=["checked", "compressai"],
                    help="compressai: the unchecked C++ decoder (hyperprior), for contrast")
    ap.add_argument("--timeout", type=float, default=CASE_TIMEOUT_S)
    ap.add_argument("--speed", action="store_true", help="only the decode-speed comparison")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--note", default="", help="a paragraph for the report (e.g. why a run was stopped)")
    ap.add_argument("--report", nargs="+", metavar="JSON",
                    help="write RESULTS_fuzz_bitstreams.md from --json outputs of earlier runs (fuzz and --speed)")
    args = ap.parse_args(argv)
    if args.report:
        fuzz, rows = [], []
        for p in args.report:
            obj = json.loads(Path(p).read_text())
            for r in obj:
                (rows if "symbols" in r else fuzz).append(r)
        write_results(fuzz, rows, note=args.note)
        print(f"wrote {RESULTS}")
        return 0
    if args.worker:
        _worker(args.worker[0], args.worker[1], args.decoder)
        return 0
    if args.speed:
        rows = speed()
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0
    with tempfile.TemporaryDirectory(prefix="lar-fuzz-") as d:
        res = [fuzz_codec(c, args.cases, args.seed, Path(d), args.decoder, args.timeout, progress_json=args.json)
               for c in args.codecs.split(",")]
    print(_table(res))
    for r in res:
        print(r["codec"], "ops:", r["ops"])
        for f in r["failures"][:10]:
            print("  ", f)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seeded fuzz cases for every file format a stranger can send, shared by ``tests/data/test_fuzz_*.py`` (a few
hundred cases in-process) and ``benchmarks/fuzz.py`` (thousands, in subprocesses with limits).

A *format* is a valid base file plus the command that reads it; a *case* is the base file mutated by
a seeded list of operations (byte flips, spans deleted or repeated, hostile tokens such as ``inf``,
``1e400``, ``TIE``, ``_line``, NUL, invalid UTF-8, 70k-character fields, header-only and empty files,
type-confused JSON/YAML values, lying zip members, PNG headers claiming huge sizes with a valid CRC).
:func:`run_case` runs the reading command in-process and returns its exit code and stderr; the
contract is exit 0, or exit 2 with a last stderr line ``error: <file>...`` and no traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------------------------
# base files

VOTES = (
    "participant,content,condition_a,condition_b,winner,group,response_time_ms,timestamp\n"
    "p1,img1,mse,lpips,mse,0.25,812,2026-01-01T00:00:00Z\n"
    "p1,img1,lpips,ssim,tie,0.25,900,2026-01-01T00:00:01Z\n"
    "p2,img1,mse,ssim,ssim,0.25,700,2026-01-01T00:00:02Z\n"
    "p2,img2,mse,lpips,lpips,0.5,650,2026-01-01T00:00:03Z\n"
    "p3,img2,lpips,ssim,lpips,0.5,1200,2026-01-01T00:00:04Z\n"
    "p3,img2,mse,ssim,mse,0.5,1000,2026-01-01T00:00:05Z\n"
)
COUNTS = ",a,b,c\na,0,3,1.5\nb,1,0,2\nc,0.5,4,0\n"
PWCMP = (
    "observer,session_id,scene,condition_A,condition_B,is_A_selected,criterion\n"
    "M01,1,window,tmo_camera,ferwerda96,1,perceptual\nM01,1,window,ronan12,irawan05,0,perceptual\n"
    "M02,1,exhibition,tmo_camera,ronan12,1,perceptual\nM02,1,exhibition,ferwerda96,irawan05,0,perceptual\n"
)
HDR_VDC = (
    "observer,scene,condition_1,condition_2,selection\n"
    "observer7,RocketLeague,H_3840x2160_bright_near,M_1920x1080_bright_near,1\n"
    "observer7,NightStreet,M_3840x2160_bright_near,L_1280x720_bright_near,0\n"
    "observer8,NightStreet,H_3840x2160_bright_near,L_1280x720_bright_near,1\n"
)
AIC3 = (
    "assignment,worker,method,task,question_id,img_num,codec_left,codec_right,codec_pivot,dlevel_left,"
    "dlevel_right,dlevel_pivot,img_left,img_right,img_pivot,is_same,is_cross,is_bias,is_trap,question_order,"
    "response,submission_time,response_time,reload_count,toggle_count,resolution\n"
    "a1,11,PTC,2,129,9,0,6,0,0,6,0,PTC_00009_0ref_00.png,PTC_00009_JPEG-AI_06.png,PTC_00009_0ref_00.png,1,0,0,0,"
    "45,right,2024-12-10T15:51:28.255Z,23903,0,2,1920x1080\n"
    "a2,31,PTC,2,164,6,6,6,0,10,2,0,PTC_00006_JPEG-AI_10.png,PTC_00006_JPEG-AI_02.png,PTC_00006_0ref_00.png,1,0,"
    "0,0,113,right,2024-12-10T14:05:14.939Z,1363,0,1,1920x1080\n"
    "a3,15,PTC,1,54,6,6,6,0,10,4,0,PTC_00006_JPEG-AI_10.png,PTC_00006_JPEG-AI_04.png,PTC_00006_0ref_00.png,1,0,"
    "0,0,4,notsure,2024-12-10T16:47:14.177Z,8305,0,4,1920x1080\n"
)
SUREAL = {
    "dataset_name": "tiny", "ref_videos": [{"content_id": 0, "content_name": "Caps", "path": "Caps1.png"}],
    "dis_videos": [
        {"asset_id": 0, "content_id": 0, "path": "Caps_a.png",
         "os": [{"subject": "s1", "other_asset_id": 1, "count": 2}, {"subject": "s2", "other_asset_id": 2,
                                                                       "count": 0.5}]},
        {"asset_id": 1, "content_id": 0, "path": "Caps_b.png",
         "os": [{"subject": "s1", "other_asset_id": 2, "count": 1}]},
        {"asset_id": 2, "content_id": 0, "path": "Caps_c.png",
         "os": [{"subject": "s2", "other_asset_id": 0, "count": 0.5}]},
    ],
}
TRIPLETS = "reference,a,b,p_a\nr1.png,a1.png,b1.png,0.75\nr1.png,a2.png,b2.png,0\nr2.png,a3.png,b3.png,1\n"
CLIC = "o1.png,a1.png,b1.png,0\no1.png,a2.png,b2.png,1\no2.png,a3.png,b3.png,0\n"
MANIFEST = (
    "content,condition,target_bpp,bpp,path\n"
    "img1,reference,,,img1/reference.png\nimg1,mse,0.25,0.24,img1/mse.png\nimg1,lpips,0.25,0.26,img1/lpips.png\n"
    "img1,ssim,0.25,0.25,img1/ssim.png\nimg2,reference,,,img2/reference.png\nimg2,mse,0.5,0.5,img2/mse.png\n"
    "img2,lpips,0.5,0.49,img2/lpips.png\nimg2,ssim,0.5,0.51,img2/ssim.png\n"
)
STUDY = {
    "study_id": "s1", "groups": [{"content": "img1", "group": "0.25", "conditions": {"mse": "c/mse.png",
                                                                                      "lpips": "c/lpips.png"}}],
    "references": {"img1": "c/ref.png"}, "traps": {"img1": "c/trap.png"},
    "practice": [{"better": "p/a.png", "worse": "p/b.png", "content": "img1"}], "sessions": [[0]],
    "crop": [320, 256], "sampler": "adjacent", "trials_per_participant": 10, "scale": 1,
    "qc": {"min_view_ms": 500}, "requirements": {"min_width": 1920, "plausible_diagonal_in": [10.0, 40.0]},
}
SECRETS = "secret: s3cret\nadmin_secret: adm1n\n"


def _png(w: int = 24, h: int = 16, bits: int = 8, channels: int = 3) -> bytes:
    import imagecodecs

    rng = np.random.default_rng(0)
    dtype = np.uint16 if bits == 16 else np.uint8
    a = rng.integers(0, np.iinfo(dtype).max, size=(h, w, channels) if channels > 1 else (h, w), dtype=dtype)
    return bytes(imagecodecs.png_encode(a))


def _pil(fmt: str, **kw) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 255, size=(16, 24, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gif_animated() -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def png_with_size(width: int, height: int, bits: int = 8) -> bytes:
    """A small PNG whose IHDR claims ``width`` x ``height`` (valid CRC): a decompression-bomb header."""
    base = _png(4, 4, bits=bits)
    ihdr = struct.pack(">IIBBBBB", width, height, bits, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return base[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + base[33:]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


AIC3_MEMBER = "JPEG_AI_SDR_subjective_data/JPEG_AIC_SDR_PTC_JPEG_AI_responses_2025.02.28_v1.csv"

# ---------------------------------------------------------------------------------------------
# mutations

TOKENS: tuple[bytes, ...] = (
    b",", b"\n", b"\r\n", b'"', b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"inf", b"-inf", b"nan", b"NaN",
    b"1e400", b"-1", b"-0", b"0.5", b"1.5", b"10000000", b"30000000", b"1e308", b"99999999999999999999",
    b"TIE", b"Tie", b"tie", b"reference", b"_line", b"_x", b"", b" ", b"\t", b"#", b"'", b"\\", b"{", b"[",
    b"null", b"true", b"0x10", b"1_000", b"\xe2\x80\xae", b"a,b,c,d,e,f,g,h", b"x" * 300, b"\n\n\n",
)
LONG_FIELD = b"y" * 70_000


def _fields(data: bytes) -> list[tuple[int, int]]:
    """Spans between separators (comma, newline) of a text file."""
    spans, start = [], 0
    for i, c in enumerate(data):
        if c in (44, 10, 13):
            spans.append((start, i))
            start = i + 1
    spans.append((start, len(data)))
    return spans


def mutate_bytes(data: bytes, rng: random.Random, n_ops: int | None = None) -> bytes:
    """Apply 1-3 random text/byte operations."""
    d = bytearray(data)
    for _ in range(n_ops or rng.choice((1, 1, 2, 3))):
        op = rng.randrange(13)
        n = max(len(d), 1)
        if op == 0 and d:  # flip a byte
            d[rng.randrange(len(d))] = rng.randrange(256)
        elif op == 1 and d:  # delete a span
            i = rng.randrange(len(d))
            del d[i: i + rng.randrange(1, 40)]
        elif op == 2 and d:  # repeat a span
            i = rng.randrange(len(d))
            j = min(len(d), i + rng.randrange(1, 80))
            d[j:j] = d[i:j] * rng.randrange(1, 4)
        elif op == 3:  # insert a token
            i = rng.randrange(n)
            d[i:i] = rng.choice(TOKENS)
        elif op in (4, 5, 6):  # replace a field by a token
            spans = _fields(bytes(d))
            a, b = spans[rng.randrange(len(spans))]
            d[a:b] = rng.choice(TOKENS) if op != 6 or rng.random() < 0.7 else LONG_FIELD
        elif op == 7:  # truncate
            d = d[: rng.randrange(n)]
        elif op == 8:  # header only
            d = d.split(b"\n", 1)[0] + b"\n"
        elif op == 9:  # swap two lines
            lines = bytes(d).split(b"\n")
            if len(lines) > 2:
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            d = bytearray(b"\n".join(lines))
        elif op == 10:  # add a column to the header or a field to one row
            lines = bytes(d).split(b"\n")
            i = rng.randrange(len(lines))
            lines[i] += b"," + rng.choice((b"_line", b"extra", b"count", b"1e400", b"-3", b"group"))
            d = bytearray(b"\n".join(lines))
        elif op == 11:  # empty file or garbage
            d = bytearray(rng.choice((b"", b"\n", b"\x00" * 64, bytes(rng.randrange(256) for _ in range(64)))))
        else:  # many rows of the same line
            lines = bytes(d).split(b"\n")
            if len(lines) > 1:
                d = bytearray(b"\n".join([lines[0]] + [lines[1]] * rng.randrange(2, 200)))
    return bytes(d)


_JSON_VALUES: tuple = (None, True, False, 0, -1, 0.5, 1.5, 1e308, float("inf"), float("nan"), 10**30, "", "x",
                       "TIE", [], {}, [1, 2], {"a": 1}, "reference", 2**63, -(2**63))


def _random_json(rng: random.Random, depth: int = 0):
    if depth > 2 or rng.random() < 0.6:
        v = rng.choice(_JSON_VALUES)
        return v
    if rng.random() < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(("subject", "count", "os", "content_id", "asset_id", "x")): _random_json(rng, depth + 1)}


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def mutate_tree(obj, rng: random.Random):
    """Replace, delete or deeply nest one random node of a JSON-like tree (a deep copy is returned)."""
    obj = json.loads(json.dumps(obj))
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = list(_paths(obj))
        path = rng.choice(paths)
        op = rng.randrange(4)
        if not path:
            obj = _random_json(rng) if op != 3 else [obj]
            continue
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op == 0:
            parent[key] = _random_json(rng)
        elif op == 1:
            del parent[key]
        elif op == 2:
            v = parent[key]
            for _ in range(rng.choice((2, 50))):
                v = [v]
            parent[key] = v
            break
        else:
            parent[key] = rng.choice(_JSON_VALUES)
    return obj


def _dump_json(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def _dump_yaml(obj) -> bytes:
    import yaml

    try:
        return yaml.safe_dump(obj, allow_unicode=True).encode()
    except (yaml.YAMLError, RecursionError, ValueError):
        return b"study_id: [unclosed\n"


# ---------------------------------------------------------------------------------------------
# formats


@dataclass
class Format:
    """A format: ``make(rng) -> {name: bytes}`` writes one case's files (the first is the one fuzzed) and
    ``argv(paths, out)`` is the ``lossarena`` command (or ``call`` an in-process reader)."""

    name: str
    make: Callable[[random.Random], dict[str, bytes]]
    argv: Callable[[dict[str, Path], Path], list[str]] | None = None
    call: Callable[[dict[str, Path], Path], None] | None = None


def _csv_format(name: str, fname: str, base: str, argv) -> Format:
    return Format(name, lambda rng: {fname: mutate_bytes(base.encode(), rng)}, argv)


def _sureal(rng: random.Random) -> dict[str, bytes]:
    r = rng.random()
    if r < 0.05:  # nested deeper than any parser's recursion limit
        n = rng.choice((1000, 100_000))
        return {"pc.json": b'{"ref_videos": ' + b"[" * n + b"]" * n + b', "dis_videos": []}'}
    if r < 0.6:
        return {"pc.json": _dump_json(mutate_tree(SUREAL, rng))}
    return {"pc.json": mutate_bytes(_dump_json(SUREAL), rng)}


def _aic3_zip(rng: random.Random) -> dict[str, bytes]:
    r = rng.random()
    if r < 0.5:
        return {"aic3.zip": _zip({AIC3_MEMBER: mutate_bytes(AIC3.encode(), rng)})}
    if r < 0.6:  # a member whose header claims a size beyond the limit
        data = bytearray(_zip({AIC3_MEMBER: AIC3.encode()}))
        i = data.rfind(b"PK\x01\x02")
        data[i + 24: i + 28] = struct.pack("<I", 0xFFFFFFF0)
        return {"aic3.zip": bytes(data)}
    if r < 0.7:  # a member that inflates 1000-fold (beyond LOSSARENA_MAX_FILE_BYTES when that is set low)
        return {"aic3.zip": _zip({AIC3_MEMBER: AIC3.encode() + b"0" * 2_000_000})}
    return {"aic3.zip": mutate_bytes(_zip({AIC3_MEMBER: AIC3.encode()}), rng)}


_IMAGES: dict[str, Callable[[], bytes]] = {
    "png": _png, "png16": lambda: _png(bits=16), "grey16": lambda: _png(bits=16, channels=1),
    "jpg": lambda: _pil("JPEG"), "bmp": lambda: _pil("BMP"), "gif": lambda: _pil("GIF"),
    "tif": lambda: _pil("TIFF"), "webp": lambda: _pil("WEBP"), "rgba": lambda: _png(channels=4),
}


def _image(rng: random.Random) -> dict[str, bytes]:
    kind = rng.choice(sorted(_IMAGES))
    r = rng.random()
    if r < 0.15:
        w, h = rng.choice(((10000, 10000), (14000, 14000), (12000, 12000), (1, 2**31 - 1), (0, 5), (65535, 4096)))
        data = png_with_size(w, h, bits=rng.choice((8, 16)))
        kind = "png"
    elif r < 0.2:
        data, kind = _gif_animated(), "gif"
    else:
        data = mutate_bytes(_IMAGES[kind](), rng)
    suffix = {"png16": "png", "grey16": "png", "rgba": "png"}.get(kind, kind)
    return {f"dist.{suffix}": data, "ref.png": _png()}


def _study(rng: random.Random) -> dict[str, bytes]:
    if rng.random() < 0.6:
        files = {"study.yaml": _dump_yaml(mutate_tree(STUDY, rng))}
    else:
        files = {"study.yaml": mutate_bytes(_dump_yaml(STUDY), rng)}
    files["secrets.yaml"] = SECRETS.encode() if rng.random() < 0.8 else mutate_bytes(SECRETS.encode(), rng)
    return files


def _load_study(paths: dict[str, Path], out: Path) -> None:
    from lossarena.study_app.core.config import load_config

    load_config(paths["study.yaml"].parent)


def _read_study_manifest(paths: dict[str, Path], out: Path) -> None:
    from lossarena.study_app.core.manifest import read_manifest

    read_manifest(paths["manifest.csv"])


def _manifest_files(rng: random.Random) -> dict[str, bytes]:
    return {"manifest.csv": mutate_bytes(MANIFEST.encode(), rng), "votes.csv": VOTES.encode()}


def _manifest_votes(rng: random.Random) -> dict[str, bytes]:
    return {"votes.csv": mutate_bytes(VOTES.encode(), rng), "manifest.csv": MANIFEST.encode()}


def _mat(rng: random.Random) -> dict[str, bytes]:
    from scipy.io import savemat

    buf = io.BytesIO()
    m = np.array([[0, 3, 1], [1, 0, 2], [0, 4, 0]], dtype=float)
    savemat(buf, {"pwc_mat_scene": m, "other": np.arange(3.0)}, do_compression=rng.random() < 0.5)
    return {"counts.mat": mutate_bytes(_fixed_mat_header(buf.getvalue()), rng)}


def _fixed_mat_header(data: bytes) -> bytes:
    """savemat writes the creation time into the 116-byte text header: fix it so cases are byte-reproducible."""
    return b"MATLAB 5.0 MAT-file, lossarena fuzz base".ljust(116, b" ") + data[116:]


def mat_with_bad_type_tag() -> bytes:
    """A .mat file whose array data element has an invalid type tag (0x97): scipy 1.17's reader segfaults."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"pwc_mat_scene": np.array([[0, 3.0], [1.0, 0]])})
    data = _fixed_mat_header(buf.getvalue())
    i = data.index(struct.pack("<II", 9, 32))  # miDOUBLE, 4 doubles
    return data[:i] + b"\x97" + data[i + 1:]


def _f(paths: dict[str, Path], name: str) -> str:
    return str(paths[name])


FORMATS: dict[str, Format] = {f.name: f for f in (
    _csv_format("votes", "votes.csv", VOTES,
                lambda p, o: ["analysis", "convert", _f(p, "votes.csv"), "--format", "votes", "--out", str(o / "v.csv")]),
    _csv_format("votes-scale", "votes.csv", VOTES,
                lambda p, o: ["analysis", "scale", _f(p, "votes.csv"), "--bootstrap", "0", "--out", str(o / "s.csv")]),
    _csv_format("counts", "counts.csv", COUNTS,
                lambda p, o: ["analysis", "scale", _f(p, "counts.csv"), "--format", "counts", "--bootstrap", "0",
                              "--out", str(o / "s.csv")]),
    Format("counts-mat", _mat,
           lambda p, o: ["analysis", "convert", _f(p, "counts.mat"), "--format", "counts", "--out", str(o / "v.csv")]),
    _csv_format("pwcmp", "pwcmp.csv", PWCMP,
                lambda p, o: ["analysis", "convert", _f(p, "pwcmp.csv"), "--format", "pwcmp", "--out", str(o / "v.csv")]),
    _csv_format("hdr-vdc", "hdr.csv", HDR_VDC,
                lambda p, o: ["analysis", "convert", _f(p, "hdr.csv"), "--format", "hdr-vdc", "--out", str(o / "v.csv")]),
    _csv_format("aic3-csv", "aic3.csv", AIC3,
                lambda p, o: ["analysis", "convert", _f(p, "aic3.csv"), "--format", "aic3", "--out", str(o / "v.csv")]),
    Format("aic3-zip", _aic3_zip,
           lambda p, o: ["analysis", "convert", _f(p, "aic3.zip"), "--format", "aic3", "--out", str(o / "v.csv")]),
    Format("sureal", _sureal,
           lambda p, o: ["analysis", "convert", _f(p, "pc.json"), "--format", "sureal-pc", "--out", str(o / "v.csv")]),
    _csv_format("triplets", "triplets.csv", TRIPLETS,
                lambda p, o: ["benchmark", "2afc", _f(p, "triplets.csv"), "--baselines-only", "--bootstrap", "20",
                              "--out", str(o / "acc.csv")]),
    _csv_format("clic", "oracle.csv", CLIC,
                lambda p, o: ["benchmark", "convert", "clic", _f(p, "oracle.csv"), "--out", str(o / "t.csv")]),
    Format("manifest", _manifest_files,
           lambda p, o: ["benchmark", "convert", "votes", _f(p, "votes.csv"), "--manifest", _f(p, "manifest.csv"),
                         "--out", str(o / "t.csv")]),
    Format("manifest-votes", _manifest_votes,
           lambda p, o: ["benchmark", "convert", "votes", _f(p, "votes.csv"), "--manifest", _f(p, "manifest.csv"),
                         "--out", str(o / "t.csv")]),
    Format("study-manifest", lambda rng: {"manifest.csv": mutate_bytes(MANIFEST.encode(), rng)},
           call=_read_study_manifest),
    Format("image", _image, lambda p, o: ["metrics", "score", _f(p, "ref.png"),
                                          str(next(v for k, v in p.items() if k.startswith("dist."))), "-m", "psnr"]),
    Format("study-config", _study, call=_load_study),
)}


# ---------------------------------------------------------------------------------------------
# running


@dataclass
class Outcome:
    rc: int
    err: str
    out: str
    files: dict[str, bytes]

    @property
    def last_line(self) -> str:
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def write_case(fmt: Format, seed: int, folder: Path) -> dict[str, Path]:
    """Write case ``seed`` of ``fmt`` into ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = fmt.make(random.Random(f"{fmt.name}:{seed}"))
    paths = {}
    for name, data in files.items():
        p = folder / name
        p.write_bytes(data)
        paths[name] = p
    return paths


def run_case(fmt: Format, paths: dict[str, Path], out: Path) -> Outcome:
    """Run the format's reader in-process. Exceptions other than lossarena's typed errors propagate."""
    from lossarena.pipeline.cli import main

    from lossarena.errors import LossarenaError

    out.mkdir(parents=True, exist_ok=True)
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        if fmt.argv is not None:
            rc = main(fmt.argv(paths, out))
        else:
            try:
                fmt.call(paths, out)
                rc = 0
            except LossarenaError as e:  # what the CLI does with it
                print(f"error: {e}", file=err)
                rc = e.exit_code
    outputs = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    return Outcome(rc, err.getvalue(), std.getvalue(), outputs)


def contract_violation(o: Outcome, paths: dict[str, Path]) -> str | None:
    """None when the outcome keeps the contract (exit 0, or exit 2 with one ``error:`` line naming a file)."""
    if "Traceback" in o.err:
        return "traceback on stderr"
    if o.rc == 0:
        return None
    if o.rc != 2:
        return f"exit {o.rc}"
    last = o.last_line
    if not last.startswith("error: "):
        return f"last stderr line is not an error line: {last[:200]!r}"
    if not any(str(p) in last or p.name in last for p in paths.values()):
        return f"error line names no input file: {last[:200]!r}"
    return None

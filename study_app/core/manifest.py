"""Reading a stimuli folder's ``manifest.csv`` (``content,condition,target_bpp,bpp,path``).

The original image of each content is the row with condition ``reference`` (empty ``bpp`` and
usually empty ``target_bpp``). ``path`` is relative to the manifest's folder. Extra columns (metric
scores) are kept in ``extra``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from lossarena.data.schemas import LINE, MANIFEST, REFERENCE, read_table, show

from lossarena.errors import InputError

REQUIRED = MANIFEST.names


@dataclass
class Row:
    content: str
    condition: str
    target_bpp: str
    bpp: float | None
    path: Path
    line: int
    extra: dict = field(default_factory=dict)


def _num(s: str, where: str) -> float | None:
    s = (s or "").strip()
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {s!r}") from None


def read_manifest(stimuli_dir: str | Path) -> list[Row]:
    """The rows of ``STIMULI/manifest.csv`` (or of the CSV file given), validated.

    Read through :func:`lossarena.data.schemas.read_table` (strict UTF-8, bounded sizes, one line
    per row); every error is an :class:`InputError` naming the file, line and field (exit code 2).
    """
    stimuli_dir = Path(stimuli_dir)
    mpath = stimuli_dir / "manifest.csv" if stimuli_dir.is_dir() else stimuli_dir
    base = mpath.parent
    if not mpath.is_file():
        raise InputError(f"{mpath}: no manifest.csv in the stimuli folder")
    table = read_table(mpath, None, allow_empty=True)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise InputError(f"{mpath}: line 1: missing column(s) {', '.join(missing)} (need {','.join(REQUIRED)})")
    rows: list[Row] = []
    seen: set[tuple[str, str, str]] = set()
    for r in table.to_dict("records"):
        i = int(r.pop(LINE))
        r = {k: "" if v is None or (isinstance(v, float) and v != v) else str(v) for k, v in r.items()}
        where = f"{mpath}: line {i}"
        content, cond = r["content"].strip(), r["condition"].strip()
        if not content:
            raise InputError(f"{where}: field 'content' is empty")
        if not cond:
            raise InputError(f"{where}: field 'condition' is empty")
        tb = r["target_bpp"].strip()
        if cond != REFERENCE:
            if _num(tb, f"{where}: field 'target_bpp'") is None:
                raise InputError(f"{where}: field 'target_bpp' is empty for condition {cond!r}")
        else:
            tb = ""
        bpp = _num(r["bpp"], f"{where}: field 'bpp'")
        rel = r["path"].strip()
        if not rel:
            raise InputError(f"{where}: field 'path' is empty")
        try:
            p = Path(rel) if Path(rel).is_absolute() else base / rel
            exists = p.is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise InputError(f"{where}: field 'path': no such file {show(rel)!r}")
        key = (content, cond, tb)
        if key in seen:
            raise InputError(f"{where}: duplicate row for content {show(content)!r}, condition {show(cond)!r}, "
                             f"target_bpp {show(tb)!r}")
        seen.add(key)
        extra = {k: v for k, v in r.items() if k not in REQUIRED}
        rows.append(Row(content, cond, tb, bpp, p, i, extra))
    if not rows:
        raise InputError(f"{mpath}: no rows")
    return rows


def write_manifest(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(REQUIRED))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in REQUIRED})
    return path

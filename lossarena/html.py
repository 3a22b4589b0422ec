"""The one HTML page helper for every report lossarena writes.

The analysis report, the benchmark report and the demo's index page share this template and
stylesheet, so a reader moves between them without a change of look, and a fix to the page
(escaping, the stand-in banner, captions) is made once. Pages are plain, self-contained HTML:
inline CSS, relative links, figures as files beside the page; they open offline.

Example
-------
>>> from lossarena.html import figure, page
>>> text = page("Report", ["<p>Hello</p>", figure("plot.png", "What to look at.")])
>>> text.startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CSS", "escape", "figure", "note", "page", "standin_banner", "write_page"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#1d2733;background:#fff;line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:2px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em} th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
th{background:#f3f5f7} td.l,th.l{text-align:left} td:first-child,th:first-child{text-align:left}
tr.flag td{background:#fde2e1}
img{max-width:100%;border:1px solid #e3e6ea;margin:.4em 0} .grid{display:flex;flex-wrap:wrap;gap:12px}
.grid figure{margin:0;flex:1 1 360px} figure{margin:.6em 0} figcaption{font-size:.85em;color:#57606a}
.note{background:#f6f8fa;border-left:4px solid #8c959f;padding:.5em 1em;font-size:.92em}
.answer{background:#eef6ee;border-left:4px solid #2f7d32;padding:.6em 1em}
.standin{background:#fdd;padding:.5em 1em;font-weight:bold;border-left:4px solid #b00}
details{margin:.4em 0} summary{cursor:pointer;font-weight:600} code{background:#f3f5f7;padding:0 3px}
"""


def escape(text: object) -> str:
    """HTML-escape ``str(text)`` (quotes included)."""
    return _html.escape(str(text), quote=True)


def note(text_html: str) -> str:
    """A grey note box around already-escaped HTML."""
    return f"<p class='note'>{text_html}</p>"


def standin_banner(what: Iterable[str]) -> str:
    """The red banner every page shows when any number on it came from stand-in backbones.

    Parameters
    ----------
    what : iterable of str
        Names of the stand-in components (e.g. ``["vgg16"]``). Empty → no banner.

    Returns
    -------
    str
        The banner's HTML, or ``""``.
    """
    names = [str(w) for w in what]
    if not names:
        return ""
    return (
        "<p class='standin'>STAND-IN WEIGHTS: the numbers below are not real (random stand-in "
        f"backbones: {escape(', '.join(names))}; for tests and plumbing only).</p>"
    )


def figure(src: str, caption: str, *, alt: str | None = None) -> str:
    """A figure with a caption that says what to look at.

    Parameters
    ----------
    src : str
        Relative path of the image file (PNG/SVG) from the page.
    caption : str
        Plain text (escaped here): what the figure shows and what to look for.
    alt : str, optional
        Alternative text; defaults to the caption.
    """
    alt_text = escape(alt if alt is not None else caption)
    return (
        f"<figure><img src='{escape(src)}' alt='{alt_text}'>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def page(title: str, body: Iterable[str], *, extra_css: str = "") -> str:
    """A complete HTML document with the shared stylesheet.

    Parameters
    ----------
    title : str
        Page title (plain text; escaped here), also the ``<h1>``.
    body : iterable of str
        HTML fragments, joined with newlines, after the heading.
    extra_css : str
        Page-specific CSS appended to the shared stylesheet.

    Returns
    -------
    str
        The document, starting with ``<!DOCTYPE html>``.
    """
    t = escape(title)
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{t}</title><style>{CSS}{extra_css}</style></head><body>",
            f"<h1>{t}</h1>",
            *body,
            "</body></html>",
        ]
    )


def write_page(path: str | Path, title: str, body: Iterable[str], *, extra_css: str = "") -> Path:
    """Write :func:`page` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(title, body, extra_css=extra_css), encoding="utf-8")
    return out

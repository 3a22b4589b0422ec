"""Metric options: ``NAME[:key=value,...]`` strings, typed per metric.

Everywhere a metric is named (``-m`` on every CLI, zoo and benchmark configs, Python) it may carry
options, e.g. ``ssim:downsample=false,color=rgb`` or ``ms-ssim:scales=3``. Each metric declares its
options as :class:`MetricOption` (name, type, default, allowed values) in its
:class:`~lossarena.metrics.registry.MetricSpec`; values given as text are coerced to that type, and
an unknown option or a bad value raises ``ValueError`` ("expected X, got Y", with a did-you-mean
hint). The key under which a result is written (JSON key, CSV column) is the string as given.

Grammar (whitespace around names and values is ignored)::

    spec    := name [ ":" option { "," option } ]
    option  := key "=" value
    bool    := true | false | 1 | 0 | yes | no | on | off      (case-insensitive)

The same options are accepted as Python keyword arguments
(``get_metric("ssim", downsample=False)``) and as a mapping in configs
(``{"name": "ssim", "downsample": false}`` via :func:`parse_metric_spec` with ``**options``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from ..errors import InputError, UnknownOptionError, did_you_mean

MAX_SPEC_LEN = 1000  # a metric spec is a short string; anything longer is not one

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclasses.dataclass(frozen=True)
class MetricOption:
    """One typed keyword option of a metric.

    Parameters
    ----------
    name : str
        Keyword name, as accepted by the metric function (``downsample``).
    type : type
        One of ``bool``, ``int``, ``float``, ``str``.
    default : Any
        The value used when the option is not given (documentation only; the function's own
        default applies).
    help : str
        One line for ``lossarena metrics list --options`` and the docs.
    choices : tuple, optional
        Allowed values (for ``str`` and ``int`` options); ``None`` means any value of ``type``.

    Examples
    --------
    >>> MetricOption("downsample", bool, True, "box downsampling").coerce("false", "ssim")
    False
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None

    def coerce(self, value: Any, metric: str) -> Any:
        """Check ``value`` (text or a Python value) and return it as :attr:`type`.

        Parameters
        ----------
        value : Any
            A string from a spec or command line, or a Python/YAML value.
        metric : str
            Metric name, for the error message.

        Returns
        -------
        Any
            The value converted to :attr:`type` (``"false"`` -> ``False``, ``"3"`` -> ``3``).

        Raises
        ------
        ValueError
            "expected X, got Y" when the value cannot be converted or is not among :attr:`choices`.
        """
        where = f"{metric}: option {self.name}"
        t = self.type
        out: Any
        if t is bool:
            if isinstance(value, bool):
                out = value
            elif isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                out = value.strip().lower() in _TRUE
            else:
                raise InputError(f"{where}: expected true or false, got {value!r}")
        elif t is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise InputError(f"{where}: expected an integer, got {value!r}")
            try:
                out = int(value.strip()) if isinstance(value, str) else value
            except ValueError:
                raise InputError(f"{where}: expected an integer, got {value!r}") from None
        elif t is float:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise InputError(f"{where}: expected a number, got {value!r}")
            try:
                out = float(value.strip()) if isinstance(value, str) else float(value)
            except ValueError:
                raise InputError(f"{where}: expected a number, got {value!r}") from None
            if not math.isfinite(out):
                raise InputError(f"{where}: expected a finite number, got {value!r}")
        elif t is str:
            if not isinstance(value, str):
                raise InputError(f"{where}: expected a string, got {value!r}")
            out = value.strip()
        else:  # pragma: no cover - a registration error, caught by the spec consistency test
            raise TypeError(f"{where}: unsupported option type {t!r}")
        if self.choices is not None and out not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            hint = did_you_mean(str(out), [str(c) for c in self.choices]) if isinstance(out, str) else ""
            raise InputError(f"{where}: expected one of {allowed}, got {value!r}{hint}")
        return out

    def describe(self) -> str:
        """``name=<type> (default D; one of a, b): help`` — one line for docs and ``--help``."""
        allowed = f"; one of {', '.join(format_value(c) for c in self.choices)}" if self.choices else ""
        return f"{self.name}=<{self.type.__name__}> (default {format_value(self.default)}{allowed}): {self.help}"


def format_value(v: Any) -> str:
    """A value as it is written in a spec string (``False`` -> ``false``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclasses.dataclass(frozen=True)
class MetricSpecRef:
    """A parsed metric spec: registry name, coerced options and the key to report results under.

    Parameters
    ----------
    name : str
        Canonical registry name (aliases resolved: ``msssim`` -> ``ms-ssim``).
    options : tuple of (str, Any)
        The coerced options, in the order given; see :attr:`kwargs`.
    key : str
        The string as given (``"ssim:downsample=false"``); results are reported under it. Options
        passed as Python keywords are appended in spec syntax.

    Examples
    --------
    >>> from lossarena.metrics import parse_metric_spec
    >>> ref = parse_metric_spec("ssim:downsample=false")
    >>> ref.name, ref.kwargs, ref.key
    ('ssim', {'downsample': False}, 'ssim:downsample=false')
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    key: str = ""

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options as a ``dict`` of keyword arguments for the metric function."""
        return dict(self.options)


def split_metric_spec(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``"name:k=v,k2=v2"`` into ``("name", [("k", "v"), ("k2", "v2")])`` without validation.

    Parameters
    ----------
    text : str
        The metric spec.

    Returns
    -------
    tuple
        The name and the raw (key, value) strings.

    Raises
    ------
    ValueError
        For an empty name, a missing ``=``, an empty key or a repeated key.
    """
    if not isinstance(text, str):
        raise InputError(f"expected a metric name (str), got {type(text).__name__}")
    if len(text) > MAX_SPEC_LEN:
        raise InputError(f"expected a metric spec of at most {MAX_SPEC_LEN} characters, got {len(text)}")
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise InputError(f"expected a metric name before ':', got {text!r}")
    pairs: list[tuple[str, str]] = []
    if sep:
        if not rest.strip():
            raise InputError(f"expected key=value options after '{name}:', got {text!r}")
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise InputError(f"{name}: expected options as key=value separated by ',', got {part.strip()!r}")
            if any(k == key for k, _ in pairs):
                raise InputError(f"{name}: expected each option once, got {key!r} twice")
            pairs.append((key, value.strip()))
    return name, pairs


def coerce_options(metric: str, declared: tuple[MetricOption, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against a metric's declared options and coerce each value.

    Parameters
    ----------
    metric : str
        Metric name (for messages).
    declared : tuple of MetricOption
        What the metric accepts.
    given : Mapping[str, Any]
        Option values (strings from a spec, or Python values).

    Returns
    -------
    dict
        ``{name: coerced value}``, in the order given.

    Raises
    ------
    UnknownOptionError
        (a ``ValueError`` and a ``TypeError``) for an option the metric does not declare, with a
        did-you-mean hint and the list of its options.
    ValueError
        For a value of the wrong type or outside the allowed choices.
    """
    by_name = {o.name: o for o in declared}
    out: dict[str, Any] = {}
    for key, value in given.items():
        opt = by_name.get(key)
        if opt is None:
            want = f"an option among [{', '.join(by_name)}]" if by_name else "no options"
            raise UnknownOptionError(f"{metric}: expected {want}, got {key!r}{did_you_mean(key, by_name)}")
        out[key] = opt.coerce(value, metric)
    return out


def format_metric_spec(name: str, options: Mapping[str, Any]) -> str:
    """The spec string for a metric name and options (the inverse of :func:`parse_metric_spec`).

    Parameters
    ----------
    name : str
        Metric name.
    options : Mapping[str, Any]
        Option values (Python values; booleans are written ``true``/``false``).

    Returns
    -------
    str
        ``name:key=value,...``, or ``name`` alone when there are no options.

    Examples
    --------
    >>> format_metric_spec("ssim", {"downsample": False, "color": "rgb"})
    'ssim:downsample=false,color=rgb'
    """
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={format_value(v)}" for k, v in options.items())

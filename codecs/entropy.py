"""Checked rANS decoding: CompressAI's range-ANS decoder re-implemented with every read bounds-checked.

CompressAI's C++ ``RansDecoder`` (``compressai/cpp_exts/rans/rans_interface.cpp``, built on Fabian
Giesen's ``rans64.h``) trusts the string it is given: the initial state, every renormalisation and every
bypass nibble read a 32-bit word at a pointer that is never compared with the end of the buffer, and the
bypass count loop (``while (val == 15)``) has no bound. A crafted string therefore makes it read memory
it does not own (SIGSEGV, images that differ from run to run) or run for hours. This module decodes the
same format in pure Python (exactly the same arithmetic, 64-bit state emulated with masks) and refuses
any string that the encoder cannot have produced:

* the string must be a whole number of 32-bit little-endian words, at least 2 (the flushed state), and
  at most what the symbol count can use (:func:`max_string_bytes`);
* every renormalisation and bypass read is checked against the end of the string;
* a bypass escape may carry at most :data:`MAX_BYPASS_NIBBLES` 4-bit nibbles (CompressAI's encoder
  writes at most 8 for a 32-bit value, always as one count nibble), so the work per symbol is bounded;
* after the last symbol, every word must have been read and the state must be back at the encoder's
  initial state ``2^31`` (rANS is a bijection: the decoder ends where the encoder started);
* decoded values beyond ``±max_abs`` are refused (a lossarena encoder never produces them).

On every string that CompressAI's encoder produces, the symbols are identical to ``RansDecoder``'s
(``tests/codecs/test_codecs_bitstream.py`` proves it on random symbols with escapes, on hyperprior streams at
several sizes and on the ROI codec's GMM streams). The work is O(symbols) and memory O(symbols), both
fixed by the validated header before a byte of the string is decoded. Any violation raises
:class:`CorruptStreamError` (a :class:`~lossarena.codecs.bitstream.BitstreamError`, exit code 2).

Speed: pure Python, a few µs per symbol; measured side by side with the C++ decoder (same strings,
same tables) by ``benchmarks/fuzz_bitstreams.py --speed`` and recorded in
``benchmarks/RESULTS_fuzz_bitstreams.md``. The synthesis transform still dominates a whole decode.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections.abc import Sequence

import torch

from .bitstream import BitstreamError

PRECISION = 16  # CompressAI's entropy_coder_precision: CDFs end at 2**16
BYPASS_PRECISION = 4  # bits per bypass nibble
MAX_BYPASS_VAL = (1 << BYPASS_PRECISION) - 1
MAX_BYPASS_NIBBLES = 8  # 32-bit raw values; a larger count is never written by CompressAI's encoder
RANS_L = 1 << 31  # lower bound of the normalisation interval (rans64.h RANS64_L) = encoder's initial state
MASK64 = (1 << 64) - 1
MAX_ABS = 1 << 20  # default bound on decoded latent values
_CUM_MASK = (1 << PRECISION) - 1
# worst case bits per symbol: 16 (frequency 1) + 4 (bypass count) + 8 x 4 (bypass nibbles) = 52 < 64
_MAX_BYTES_PER_SYMBOL = 8

__all__ = ["CorruptStreamError", "RansDecoder", "check_string", "decode_with_indexes", "max_string_bytes",
           "checked_entropy_decompress", "checked_bottleneck_decompress",
           "checked_hyperprior_decompress", "check_cdf_tables"]


class CorruptStreamError(BitstreamError):
    """An entropy-coded string that CompressAI's encoder cannot have produced (exit code 2)."""


def max_string_bytes(n_symbols: int) -> int:
    """Upper bound on the length of a valid rANS string coding ``n_symbols`` symbols (bytes)."""
    return 8 + 4 + _MAX_BYTES_PER_SYMBOL * max(int(n_symbols), 0)


def check_string(data: bytes, n_symbols: int | None = None, *, source: str = "<bytes>",
                 what: str = "entropy-coded") -> None:
    """Raise :class:`CorruptStreamError` unless ``data`` can be an rANS string of ``n_symbols`` symbols.

    A valid string is whole 32-bit words, at least 8 bytes (the flushed state) and at most
    :func:`max_string_bytes` ``(n_symbols)`` long. Cheap: run it on every string before decoding any.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise CorruptStreamError(f"{source}: corrupt {what} string (expected bytes, got {type(data).__name__})")
    n = len(data)
    if n < 8 or n % 4:
        raise CorruptStreamError(f"{source}: corrupt {what} string ({n} bytes; expected a multiple of 4, at least 8)")
    if n_symbols is not None and n > max_string_bytes(n_symbols):
        raise CorruptStreamError(f"{source}: corrupt {what} string ({n} bytes, more than {n_symbols} symbols can "
                                 f"use: at most {max_string_bytes(n_symbols)})")


def _int32(v: int) -> int:
    """Two's-complement wrap to int32 (what the C++ decoder's ``int32_t`` arithmetic does)."""
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class RansDecoder:
    """Bounds-checked drop-in for CompressAI's ``RansDecoder`` over one string.

    Parameters
    ----------
    data : bytes
        The rANS string (CompressAI's ``BufferedRansEncoder.flush()`` output).
    n_symbols : int, optional
        Symbols the caller will decode from it; when given, a string longer than
        :func:`max_string_bytes` of it is refused before decoding.
    source : str
        File name for messages.
    what : str
        Which string (``"y"``, ``"z"``) for messages.

    Raises
    ------
    CorruptStreamError
        The string is not whole 32-bit words, shorter than the 8-byte state, or longer than
        ``n_symbols`` can use.
    """

    def __init__(self, data: bytes, n_symbols: int | None = None, *, source: str = "<bytes>",
                 what: str = "entropy-coded"):
        self.source, self.what = source, what
        check_string(data, n_symbols, source=source, what=what)
        words = array("I")
        if words.itemsize != 4:  # pragma: no cover - every platform torch supports has 32-bit 'I'
            words = array("L")
        words.frombytes(bytes(data))
        if sys.byteorder == "big":  # pragma: no cover - CompressAI writes native little-endian words
            words.byteswap()
        self._words = words
        self._x = words[0] | (words[1] << 32)
        self._pos = 2
        self.decoded = 0

    # ------------------------------------------------------------------ errors
    def _fail(self, why: str):
        raise CorruptStreamError(f"{self.source}: corrupt {self.what} string ({why})")

    def _ran_out(self):
        self._fail(f"it ends after {len(self._words) * 4} bytes, in the middle of symbol {self.decoded + 1}")

    # ------------------------------------------------------------------ decoding
    def decode_stream(self, indexes: Sequence[int], cdfs: Sequence[Sequence[int]], cdf_lengths: Sequence[int],
                      offsets: Sequence[int]) -> list[int]:
        """Decode ``len(indexes)`` symbols (same arguments as CompressAI's ``RansDecoder.decode_stream``).

        Parameters
        ----------
        indexes : sequence of int
            Table index per symbol, each in ``[0, len(cdfs))``.
        cdfs : sequence of sequence of int
            Quantised CDFs (``0 … 2^16``), possibly padded beyond their length.
        cdf_lengths : sequence of int
            Used length of each CDF (symbols + escape slot + 1), each ≥ 2.
        offsets : sequence of int
            Value of symbol 0 per table.

        Returns
        -------
        list of int
            The decoded values (int32, like the C++ decoder).

        Raises
        ------
        CorruptStreamError
            The string ends early, or escapes a count the encoder never writes, or a table index is
            out of range.
        """
        n_tab = len(cdfs)
        if len(cdf_lengths) != n_tab or len(offsets) != n_tab:
            raise ValueError(f"expected {n_tab} CDF lengths and offsets, got {len(cdf_lengths)} and {len(offsets)}")
        for n in cdf_lengths:
            if n < 2:
                raise ValueError(f"expected CDF lengths of at least 2, got {n}")
        words, nw = self._words, len(self._words)
        x, pos = self._x, self._pos
        out = [0] * len(indexes)
        br, L, M64, CM = bisect_right, RANS_L, MASK64, _CUM_MASK
        for i, t in enumerate(indexes):
            if not 0 <= t < n_tab:
                self.decoded += i
                self._fail(f"table index {t} out of range at symbol {self.decoded + 1}")
            c = cdfs[t]
            hi = cdf_lengths[t]
            maxv = hi - 2
            cum = x & CM
            s = br(c, cum, 0, hi) - 1
            if s < 0 or s > maxv:  # only with a malformed table (cdf[0] > cum or cdf[end] <= cum)
                self.decoded += i
                self._fail(f"symbol outside its table at symbol {self.decoded + 1}")
            start = c[s]
            x = ((c[s + 1] - start) * (x >> PRECISION) + cum - start) & M64
            if x < L:
                if pos >= nw:
                    self._x, self._pos, self.decoded = x, pos, self.decoded + i
                    self._ran_out()
                x = (x << 32) | words[pos]
                pos += 1
            if s == maxv:
                self._x, self._pos = x, pos
                v = self._bypass(maxv)
                x, pos = self._x, self._pos
                out[i] = _int32(v + offsets[t])
            else:
                out[i] = s + offsets[t]
        self._x, self._pos = x, pos
        self.decoded += len(out)
        return out

    def _get_bits(self) -> int:
        x = self._x
        val = x & MAX_BYPASS_VAL
        x >>= BYPASS_PRECISION
        if x < RANS_L:
            if self._pos >= len(self._words):
                self._x = x
                self._ran_out()
            x = (x << 32) | self._words[self._pos]
            self._pos += 1
        self._x = x
        return val

    def _bypass(self, max_value: int) -> int:
        n_bypass = self._get_bits()
        if n_bypass > MAX_BYPASS_NIBBLES:
            self._fail(f"an escape of {n_bypass} nibbles at symbol {self.decoded + 1}; "
                       f"the encoder writes at most {MAX_BYPASS_NIBBLES}")
        raw = 0
        for j in range(n_bypass):
            raw |= self._get_bits() << (j * BYPASS_PRECISION)
        raw = _int32(raw)
        value = raw >> 1
        if raw & 1:
            return -value - 1
        return _int32(value + max_value)

    def finish(self) -> None:
        """Check that the whole string was used and the state is back at the encoder's start.

        Raises
        ------
        CorruptStreamError
            Words left over, or a final state other than ``2^31``.
        """
        left = len(self._words) - self._pos
        if left:
            self._fail(f"{left * 4} bytes left after its {self.decoded} symbols")
        if self._x != RANS_L:
            self._fail(f"final state {self._x:#x} after its {self.decoded} symbols, expected {RANS_L:#x}")


def decode_with_indexes(data: bytes, indexes: Sequence[int], cdfs: Sequence[Sequence[int]],
                        cdf_lengths: Sequence[int], offsets: Sequence[int], *, source: str = "<bytes>",
                        what: str = "entropy-coded", max_abs: int | None = MAX_ABS) -> list[int]:
    """Checked equivalent of CompressAI's ``RansDecoder().decode_with_indexes`` (same arguments).

    Decodes the whole string, then checks it was used exactly (:meth:`RansDecoder.finish`) and that
    every value is within ``±max_abs`` (``None``: no bound).

    Returns
    -------
    list of int
        ``len(indexes)`` decoded values.

    Raises
    ------
    CorruptStreamError
        See :class:`RansDecoder`.
    """
    dec = RansDecoder(data, len(indexes), source=source, what=what)
    out = dec.decode_stream(indexes, cdfs, cdf_lengths, offsets)
    dec.finish()
    if max_abs is not None and out and (max(out) > max_abs or min(out) < -max_abs):
        dec._fail(f"a decoded value beyond ±{max_abs}")
    return out


def check_cdf_tables(cdf: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor, *, what: str = "entropy model"):
    """Validate an entropy model's quantised CDF buffers (vectorised) and return them as lists.

    Parameters
    ----------
    cdf : Tensor
        ``(T, Lmax)`` int, rows ``0 … 2^16`` strictly increasing over their length, zero-padded.
    lengths, offsets : Tensor
        ``(T,)`` used length (2 … Lmax) and value offset per table.

    Returns
    -------
    tuple of (list of list of int, list of int, list of int)

    Raises
    ------
    ValueError
        Malformed tables (a damaged checkpoint, not a damaged bitstream).
    """
    cdf, lengths, offsets = cdf.detach().cpu().long(), lengths.detach().cpu().long().reshape(-1), \
        offsets.detach().cpu().long().reshape(-1)
    if cdf.dim() != 2 or cdf.shape[0] == 0 or lengths.numel() != cdf.shape[0] or offsets.numel() != cdf.shape[0]:
        raise ValueError(f"expected {what} CDF tables (T, L) with T lengths and offsets, got {tuple(cdf.shape)}, "
                         f"{lengths.numel()}, {offsets.numel()}")
    if int(lengths.min()) < 2 or int(lengths.max()) > cdf.shape[1]:
        raise ValueError(f"expected {what} CDF lengths in [2, {cdf.shape[1]}], got "
                         f"[{int(lengths.min())}, {int(lengths.max())}]")
    j = torch.arange(cdf.shape[1])[None, :]
    inside = j[:, 1:] < lengths[:, None]
    rising = (cdf[:, 1:] > cdf[:, :-1]) | ~inside
    last = cdf.gather(1, (lengths - 1)[:, None]).squeeze(1)
    if bool((cdf[:, 0] != 0).any()) or bool((last != (1 << PRECISION)).any()) or not bool(rising.all()):
        raise ValueError(f"expected {what} CDFs rising strictly from 0 to {1 << PRECISION}")
    if int(offsets.abs().max()) >= 1 << 31:
        raise ValueError(f"expected {what} offsets within int32")
    return cdf.tolist(), lengths.tolist(), offsets.tolist()


def checked_entropy_decompress(entropy_model, strings: Sequence[bytes], indexes: torch.Tensor,
                               dtype: torch.dtype = torch.float, means: torch.Tensor | None = None, *,
                               source: str = "<bytes>", what: str = "entropy-coded",
                               max_abs: int | None = MAX_ABS) -> torch.Tensor:
    """What CompressAI's ``EntropyModel.decompress`` does, with :func:`decode_with_indexes`.

    Parameters
    ----------
    entropy_model : compressai.entropy_models.EntropyModel
        An updated ``EntropyBottleneck`` or ``GaussianConditional`` (its CDF buffers are validated).
    strings : sequence of bytes
        One string per batch item.
    indexes : Tensor
        ``(B, C, ...)`` int table index per symbol (any device).
    dtype : torch.dtype
        Output dtype when ``means`` is None.
    means : Tensor, optional
        Added to the decoded integers (the entropy bottleneck's medians).

    Returns
    -------
    Tensor
        ``indexes.shape``, on ``indexes``' device: the dequantised values.

    Raises
    ------
    CorruptStreamError
        A string the encoder cannot have produced.
    """
    if len(strings) != indexes.size(0):
        raise ValueError(f"expected {indexes.size(0)} strings, got {len(strings)}")
    cdfs, lengths, offsets = check_cdf_tables(entropy_model._quantized_cdf, entropy_model._cdf_length,
                                              entropy_model._offset)
    idx = indexes.detach().to("cpu", torch.int64)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(cdfs)):
        raise ValueError(f"expected table indexes in [0, {len(cdfs)}), got [{int(idx.min())}, {int(idx.max())}]")
    outputs = torch.empty(idx.shape, dtype=torch.int32)
    for i, s in enumerate(strings):
        values = decode_with_indexes(s, idx[i].reshape(-1).tolist(), cdfs, lengths, offsets, source=source,
                                     what=what, max_abs=max_abs)
        outputs[i] = torch.tensor(values, dtype=torch.int32).reshape(outputs[i].shape)
    outputs = outputs.to(indexes.device)
    if means is not None:
        return outputs.type_as(means) + means
    return outputs.type(dtype)


def checked_bottleneck_decompress(eb, strings: Sequence[bytes], size: tuple[int, int], *, source: str = "<bytes>",
                                  what: str = "z", max_abs: int | None = MAX_ABS) -> torch.Tensor:
    """CompressAI's ``EntropyBottleneck.decompress(strings, size)`` with the checked decoder.

    Parameters
    ----------
    eb : compressai.entropy_models.EntropyBottleneck
        Updated (CDF tables built).
    strings : sequence of bytes
        One string per batch item.
    size : (int, int)
        Spatial size of the latent.

    Returns
    -------
    Tensor
        ``(len(strings), C, *size)`` float: decoded integers plus the channel medians.

    Raises
    ------
    CorruptStreamError
        A string the encoder cannot have produced.
    """
    size = tuple(int(v) for v in size)
    out_size = (len(strings), eb._quantized_cdf.size(0), *size)
    idx = eb._build_indexes(out_size).to(eb._quantized_cdf.device)
    medians = eb._extend_ndims(eb._get_medians().detach(), len(size))
    medians = medians.expand(len(strings), *([-1] * (len(size) + 1)))
    return checked_entropy_decompress(eb, strings, idx, medians.dtype, medians, source=source, what=what,
                                      max_abs=max_abs)


def checked_hyperprior_decompress(model, strings: Sequence[Sequence[bytes]], shape: tuple[int, int], *,
                                  source: str = "<bytes>", max_abs: int | None = MAX_ABS) -> torch.Tensor:
    """CompressAI's ``ScaleHyperprior.decompress`` with the checked decoder: ``x̂`` (1, 3, 64h, 64w) in [0, 1].

    Parameters
    ----------
    model : compressai.models.ScaleHyperprior
        An updated model (entropy tables built), on any device.
    strings : ``[[y_string], [z_string]]``
    shape : (int, int)
        ``z``'s spatial size (the padded image size / 64).

    Returns
    -------
    Tensor
        The reconstruction, identical to ``model.decompress(strings, shape)["x_hat"]`` on every valid
        stream; non-finite values (possible only from crafted latents) are set to 0.

    Raises
    ------
    CorruptStreamError
        A string the encoder cannot have produced.
    """
    if len(strings) != 2 or any(len(s) != 1 for s in strings):
        raise ValueError("expected two streams of one string each")
    eb, gc = model.entropy_bottleneck, model.gaussian_conditional
    size = tuple(int(v) for v in shape)
    # both strings' lengths against the symbol counts the shapes imply, before decoding either
    n_z = int(eb._quantized_cdf.size(0)) * size[0] * size[1]
    n_y = int(getattr(model, "M", 0) or gc_channels(model)) * 16 * size[0] * size[1]
    check_string(strings[1][0], n_z, source=source, what="z")
    check_string(strings[0][0], n_y, source=source, what="y")
    z_hat = checked_bottleneck_decompress(eb, strings[1], size, source=source, what="z", max_abs=max_abs)
    scales_hat = model.h_s(z_hat)
    y_idx = gc.build_indexes(scales_hat)
    y_hat = checked_entropy_decompress(gc, strings[0], y_idx, z_hat.dtype, source=source, what="y",
                                       max_abs=max_abs)
    x_hat = model.g_s(y_hat).clamp_(0, 1)
    return torch.nan_to_num_(x_hat, nan=0.0)


def gc_channels(model) -> int:
    """Channels of ``y`` in a CompressAI hyperprior (``M``; read from ``g_a``'s last layer if needed)."""
    for m in reversed(list(model.g_a.modules())):
        if isinstance(m, torch.nn.Conv2d):
            return int(m.out_channels)
    raise ValueError("expected a CompressAI hyperprior with a convolutional g_a")

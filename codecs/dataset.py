"""The training input pipeline: a patch dataset over a folder or a prepared uint8 cache, and its DataLoader.

Sources
-------
* **A folder** of PNG/JPEG images: each sample decodes its image in a DataLoader worker (nothing is
  kept in memory beyond a few recently used images per worker).
* **A cache** written once by ``lossarena codecs prepare-data IMAGES --out CACHE``: the decoded RGB
  pixels as uint8 shards (``shard-NNNNN.u8``, at most ``shard_bytes`` each) plus ``index.json`` (name,
  height, width, shard, offset and a SHA-256 of the pixels per image). Shards are opened with
  ``numpy.memmap`` (read-only): every run and every rank on a machine share the operating system's
  page cache, and a process's memory stays bounded whatever the size of the training set.

``--data`` takes either (a folder containing ``index.json`` is a cache).

Sample order
------------
Identical to the previous in-thread loader (:class:`lossarena.codecs.patches.PatchSource`): sample
``n`` of the global stream belongs to epoch ``n // len(images)``; each epoch visits the images in a
seeded permutation; crop position and flip come from ``rng([seed, epoch, n])``; rank ``r`` takes its
contiguous slice of each global batch. So a resumed run continues exactly from the step alone, for any
number of workers.

The loader yields uint8 ``B x 3 x P x P`` batches (4× less host→device traffic than float); the
trainer converts on the device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from lossarena.errors import InputError

log = logging.getLogger(__name__)

CACHE_FORMAT = "lossarena-patch-cache"
CACHE_VERSION = 1
INDEX = "index.json"
MAX_INDEX_BYTES = 256 << 20
MAX_SIDE = 1 << 15


def decode_uint8(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB, the same pixels as ``round(read_array(path) * 255)`` (grey replicated, alpha
    over white, 16-bit rounded to 8)."""
    from lossarena.data.images import read_array
    from PIL import Image

    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.mode == "RGB":  # the common case, without the float64 detour
                im.load()
                return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, ValueError):
        pass  # read_array gives the one-line error (or handles 16-bit PNGs)
    return (read_array(p) * 255.0 + 0.5).astype(np.uint8)


def pixel_hash(a: np.ndarray) -> str:
    """SHA-256 of an image's uint8 pixels and shape (what the train/eval overlap check compares)."""
    h = hashlib.sha256(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def upscale_to(a: np.ndarray, patch: int) -> np.ndarray:
    """Bicubic upscale so both sides are >= ``patch`` (unchanged when they already are)."""
    h, w = a.shape[:2]
    if min(h, w) >= patch:
        return a
    from PIL import Image

    s = patch / min(h, w)
    return np.asarray(Image.fromarray(a).resize((max(patch, round(w * s)), max(patch, round(h * s))),
                                                Image.BICUBIC))


# --------------------------------------------------------------------------------------------- cache
def is_cache(path: str | Path) -> bool:
    return (Path(path) / INDEX).is_file()


def prepare_cache(images, out: str | Path, *, shard_bytes: int = 1 << 30, progress: bool = True) -> Path:
    """Decode a folder (or list) of images once into uint8 shards + ``index.json``; returns ``out``.

    Memory stays bounded by one decoded image; an existing cache in ``out`` is replaced atomically
    (``index.json`` is written last).

    Parameters
    ----------
    images : str, Path or list of Path
        A folder of PNG/JPEG/... images or a list of files.
    out : str or Path
        Cache folder to create.
    shard_bytes : int
        Maximum bytes per shard file (an image larger than this gets a shard of its own).

    Raises
    ------
    InputError
        An unreadable image (file named), an empty folder.
    """
    from lossarena.data.images import list_images
    from tqdm import tqdm

    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    if not paths:
        raise InputError(f"{images}: no images")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)
    entries, shard, offset, f = [], -1, 0, None
    try:
        for p in tqdm(paths, desc="prepare-data", disable=not progress, dynamic_ncols=True):
            a = decode_uint8(p)
            n = a.nbytes
            if f is None or (offset + n > shard_bytes and offset > 0):
                if f is not None:
                    f.close()
                shard += 1
                offset = 0
                f = open(out / f"shard-{shard:05d}.u8", "wb")
            f.write(np.ascontiguousarray(a).tobytes())
            entries.append({"name": p.name, "height": int(a.shape[0]), "width": int(a.shape[1]),
                            "shard": shard, "offset": offset, "sha256": pixel_hash(a)})
            offset += n
    finally:
        if f is not None:
            f.close()
    index = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "source": str(images), "images": entries,
             "shards": shard + 1}
    tmp = out / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index, indent=0))
    os.replace(tmp, out / INDEX)
    return out


def read_index(cache: str | Path) -> dict:
    """``index.json`` validated against the shard files (InputError naming file and field)."""
    cache = Path(cache)
    p = cache / INDEX
    if p.stat().st_size > MAX_INDEX_BYTES:
        raise InputError(f"{p}: index larger than {MAX_INDEX_BYTES} bytes")
    try:
        idx = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(idx, dict) or idx.get("format") != CACHE_FORMAT:
        raise InputError(f"{p}: field 'format': expected '{CACHE_FORMAT}'")
    if idx.get("version") != CACHE_VERSION:
        raise InputError(f"{p}: field 'version': expected {CACHE_VERSION}, got {idx.get('version')!r}")
    ims = idx.get("images")
    if not isinstance(ims, list) or not ims:
        raise InputError(f"{p}: field 'images': expected a non-empty list")
    sizes: dict[int, int] = {}
    for i, e in enumerate(ims):
        where = f"{p}: images[{i}]"
        if not isinstance(e, dict):
            raise InputError(f"{where}: expected an object")
        for k in ("height", "width", "shard", "offset"):
            v = e.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InputError(f"{where}: field '{k}': expected a non-negative integer, got {v!r}")
        if not (0 < e["height"] <= MAX_SIDE and 0 < e["width"] <= MAX_SIDE):
            raise InputError(f"{where}: fields 'height'/'width': implausible size {e['height']}x{e['width']}")
        s = e["shard"]
        if s not in sizes:
            sp = cache / f"shard-{s:05d}.u8"
            if not sp.is_file():
                raise InputError(f"{where}: field 'shard': {sp.name} does not exist")
            sizes[s] = sp.stat().st_size
        if e["offset"] + e["height"] * e["width"] * 3 > sizes[s]:
            raise InputError(f"{where}: fields 'offset'/'height'/'width' point past the end of shard {s}")
        if not isinstance(e.get("name", ""), str) or not isinstance(e.get("sha256", ""), str):
            raise InputError(f"{where}: fields 'name'/'sha256': expected strings")
    return idx


#: decoded images of a folder kept per process (bytes); a folder that fits is decoded once per process.
FOLDER_CACHE_BYTES = 512 * 2**20


class ImageStore:
    """Random access to the decoded uint8 images of a folder or a cache (opened lazily, per process).

    A folder's decoded images are kept in a least-recently-used store of at most ``cache_bytes``
    (default :data:`FOLDER_CACHE_BYTES`, at least one image), so a small training folder is decoded
    once per process rather than once per patch; a large one is better served by `codecs prepare-data`.
    """

    def __init__(self, source: str | Path, *, cache_bytes: int = FOLDER_CACHE_BYTES):
        from lossarena.data.images import list_images

        self.source = Path(source)
        if not self.source.exists():
            raise InputError(f"{self.source}: no such folder or cache")
        self.cached = is_cache(self.source)
        if self.cached:
            self.index = read_index(self.source)["images"]
            self.paths = None
            self.names = [e.get("name", str(i)) for i, e in enumerate(self.index)]
        else:
            self.index = None
            self.paths = list_images(self.source)
            if not self.paths:
                raise InputError(f"{self.source}: no images")
            self.names = [p.name for p in self.paths]
        self._maps: dict[int, np.memmap] = {}
        self._lru: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lru_bytes = int(cache_bytes)

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self):  # workers reopen the memory maps themselves
        st = dict(self.__dict__)
        st["_maps"], st["_lru"] = {}, OrderedDict()
        return st

    def image(self, i: int) -> np.ndarray:
        """HxWx3 uint8 (a read-only view into the memory map for a cache)."""
        if self.cached:
            e = self.index[i]
            s = e["shard"]
            if s not in self._maps:
                self._maps[s] = np.memmap(self.source / f"shard-{s:05d}.u8", dtype=np.uint8, mode="r")
            n = e["height"] * e["width"] * 3
            return self._maps[s][e["offset"]:e["offset"] + n].reshape(e["height"], e["width"], 3)
        if i in self._lru:
            self._lru.move_to_end(i)
            return self._lru[i]
        a = decode_uint8(self.paths[i])
        self._lru[i] = a
        while len(self._lru) > 1 and sum(v.nbytes for v in self._lru.values()) > self._lru_bytes:
            self._lru.popitem(last=False)
        return a

    def hashes(self) -> dict[str, str]:
        """``{sha256: name}`` of every image's pixels (stored in a cache, computed for a folder)."""
        if self.cached:
            out = {e["sha256"]: e.get("name", str(i)) for i, e in enumerate(self.index) if e.get("sha256")}
            if len(out) == len(self.index):
                return out
        return {pixel_hash(self.image(i)): self.names[i] for i in range(len(self))}

    def files(self) -> set[Path]:
        """Resolved image files of a folder (empty for a cache)."""
        return {p.resolve() for p in self.paths} if self.paths else set()


# ---------------------------------------------------------------------------------------- patches
class PatchDataset(torch.utils.data.Dataset):
    """Sample ``n`` of the global stream: a 3xPxP uint8 patch (see the module docstring for the order)."""

    def __init__(self, source: str | Path | ImageStore, patch: int, seed: int = 0, *, flip: bool = True):
        self.store = source if isinstance(source, ImageStore) else ImageStore(source)
        self.patch = int(patch)
        self.seed = int(seed)
        self.flip = flip
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:  # the stream is unbounded; this is one epoch
        return len(self.store)

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([self.seed, 7919, epoch]).permutation(len(self.store))
        return self._perms[epoch]

    def __getitem__(self, n: int) -> torch.Tensor:
        epoch, k = divmod(int(n), len(self.store))
        a = upscale_to(self.store.image(int(self._perm(epoch)[k])), self.patch)
        rng = np.random.default_rng([self.seed, epoch, int(n)])
        h, w = a.shape[:2]
        y = int(rng.integers(0, h - self.patch + 1))
        x = int(rng.integers(0, w - self.patch + 1))
        crop = a[y:y + self.patch, x:x + self.patch]
        if self.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's list of global sample indices for steps ``start .. steps-1``."""

    def __init__(self, start: int, steps: int, batch: int, rank: int = 0, world: int = 1):
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        self.start, self.steps, self.batch, self.rank, self.world = start, steps, batch, rank, world

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self):
        for step in range(self.start, self.steps):
            first = step * self.batch * self.world + self.rank * self.batch
            yield list(range(first, first + self.batch))


def default_workers(device: torch.device) -> int:
    """CPU training: 0 (the main process is busy computing anyway); GPU: up to 8 per process, leaving
    one core per local process for the training loop."""
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(0, min(8, cores // max(1, local) - 1))


def make_loader(source, patch: int, seed: int, *, start: int, steps: int, batch: int, rank: int = 0,
                world: int = 1, workers: int = 0, prefetch: int = 4, pin_memory: bool = False):
    """A ``DataLoader`` over :class:`PatchDataset` yielding uint8 ``batch x 3 x P x P`` per step.

    Persistent workers and ``prefetch_factor`` apply when ``workers > 0``; ``pin_memory`` for CUDA.
    """
    ds = source if isinstance(source, PatchDataset) else PatchDataset(source, patch, seed)
    kw = {}
    if workers > 0:
        kw = dict(persistent_workers=True, prefetch_factor=max(1, prefetch))
    return torch.utils.data.DataLoader(ds, batch_sampler=StepBatchSampler(start, steps, batch, rank, world),
                                       num_workers=max(0, workers), pin_memory=pin_memory,
                                       # its own generator: creating an iterator must not draw from the
                                       # global RNG (that would break exact resume)
                                       generator=torch.Generator().manual_seed(int(seed)), **kw)


# ------------------------------------------------------------------------------------ overlap check
def check_disjoint(train: str | Path, evaluation: str | Path) -> None:
    """Refuse (InputError) when a training and an evaluation set share a file or an image's pixels.

    Parameters
    ----------
    train, evaluation : str or Path
        Folders of images or prepared caches.

    Raises
    ------
    InputError
        ``train data X and evaluation data Y overlap: N images (same file|same pixels), e.g. a = b``.
    """
    a, b = ImageStore(train), ImageStore(evaluation)
    same_files = sorted(a.files() & b.files())
    if same_files:
        raise InputError(f"train data {train} and evaluation data {evaluation} overlap: {len(same_files)} "
                         f"image(s) are the same file, e.g. {same_files[0]}")
    ha, hb = a.hashes(), b.hashes()
    common = sorted(set(ha) & set(hb))
    if common:
        raise InputError(f"train data {train} and evaluation data {evaluation} overlap: {len(common)} "
                         f"image(s) with the same pixels, e.g. {ha[common[0]]} = {hb[common[0]]}")

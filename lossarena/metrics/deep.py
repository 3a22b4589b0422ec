"""Deep full-reference metrics: LPIPS (AlexNet, VGG16, SqueezeNet trunks) and DISTS.

Both need an ImageNet backbone from torchvision's cache, loaded **only** through
:mod:`lossarena.metrics.weights` (SHA-256 verified, never downloaded here); a missing backbone raises
:class:`~lossarena.errors.MissingWeightsError` naming the file and ``lossarena weights status|download``.

LPIPS (Zhang et al. 2018) uses the ``lpips`` package's network definition and the v0.1 linear heads
shipped inside the ``lpips`` wheel (found with :mod:`importlib.resources`). The trunk is built with
random (meta) weights, so torchvision never tries to download, and our verified torchvision
state_dict is mapped onto it (``features.{i}.*`` -> ``slice{k}.{i}.*``). Inputs in [0, 1] are mapped
to the [-1, 1] that LPIPS expects. One change from the package: the channel normalisation
``f / (||f|| + 1e-10)`` takes ``||f||`` as ``sqrt(max(sum f², 1e-20))``; values are unchanged (the
two differ only where ``||f|| < 1e-10``, i.e. all-zero features, which map to 0 either way) but the
gradient stays finite on flat and black images, where the package gives NaN (``d sqrt(0)``).

DISTS (Ding et al. 2020) is our own module after the authors' code: VGG16 with every max-pool
replaced by an L2 pooling (3x3 Hann window, stride 2), six stages (the input image, relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3), per-channel texture (means) and structure (variances/covariance) terms
with c1 = c2 = 1e-6, weighted by the published alpha/beta. Fixed against ``DISTS_pytorch``: features
always carry gradients (the package runs them under ``no_grad`` unless ``require_grad=True``),
alpha/beta come from the installed ``DISTS_pytorch`` distribution's own file (located with
:mod:`importlib.metadata`, not ``sys.prefix``), and inputs are never resized (piq's DISTS resizes
images over 256 px).

Every metric here: ``lower_better=True`` (a distance, 0 for identical images), differentiable with
respect to both inputs, parameters frozen (``requires_grad=False``), always in eval mode.
The functional form (``compute`` / ``spec.function``) caches one network per
(metric, device, dtype, backbone file).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingWeightsError
from . import weights as W
from .registry import MetricSpec, reduce, register_metric
from .validate import validate_images

# ----------------------------------------------------------------------------------------------------
# LPIPS

LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
# smallest input side each trunk accepts (checked in tests/metrics/test_metrics_deep.py)
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}
DISTS_MIN_SIZE = 16  # below, relu5_3 is 1x1 and its structure term a constant


def lpips_head_path(net: str, version: str = "0.1") -> Path:
    """The linear-head weights shipped inside the installed ``lpips`` wheel.

    Parameters
    ----------
    net : {"alex", "vgg", "squeeze"}
        Trunk name.
    version : str
        LPIPS head version (``"0.1"``).

    Returns
    -------
    pathlib.Path
        The ``.pth`` file.

    Raises
    ------
    MissingWeightsError
        When the file is not in the installed package.
    """
    p = importlib.resources.files("lpips") / "weights" / f"v{version}" / f"{net}.pth"
    path = Path(str(p))
    if not path.is_file():
        raise MissingWeightsError(
            f"LPIPS linear heads not found at {path}: the installed `lpips` package is incomplete; "
            "reinstall it with `pip install --force-reinstall lpips`"
        )
    return path


def _map_features(state: dict, slices: nn.Module) -> dict:
    """torchvision ``features.{i}.{param}`` keys -> ``slice{k}.{i}.{param}`` of an lpips trunk."""
    where = {}
    for sname, sl in slices.named_children():
        for idx, _ in sl.named_children():
            where[idx] = sname
    out = {}
    for key, v in state.items():
        if not key.startswith("features."):
            continue  # the classifier is not part of any metric
        idx, rest = key[len("features."):].split(".", 1)
        if idx in where:
            out[f"{where[idx]}.{idx}.{rest}"] = v
    return out


def _safe_unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """lpips.normalize_tensor with a finite gradient at all-zero features (see module docstring)."""
    norm = f.pow(2).sum(dim=1, keepdim=True).clamp_min(eps * eps).sqrt()
    return f / (norm + eps)


class _FrozenEval(nn.Module):
    """Always in eval mode (LPIPS heads contain dropout); parameters never require grad."""

    def train(self, mode: bool = True) -> _FrozenEval:  # a metric never trains: dropout stays off
        return super().train(False)

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)


class LPIPS(_FrozenEval):
    """LPIPS distance, ``forward(x_distorted, y_reference) -> (N,)`` for [0, 1] RGB NCHW inputs;
    lower is better, 0 for identical images.

    Parameters
    ----------
    net : {"alex", "vgg", "squeeze"}
        The ImageNet trunk (``"alex"`` is ``lpips``, the default); v0.1 linear heads.
    reduction : {"none", "mean", "sum"}
        ``"none"``: per-image values (N,).

    Raises
    ------
    MissingWeightsError
        When the trunk's torchvision backbone file is not in the cache (``lossarena weights status``).
    ValueError
        For an unknown ``net``; in ``forward``, for inputs outside the contract or smaller than
        31 (alex), 16 (vgg) or 17 (squeeze) px.

    References
    ----------
    R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness of Deep
    Features as a Perceptual Metric", CVPR 2018.

    Examples
    --------
    >>> import torch
    >>> lp = LPIPS("alex")                      # doctest: +SKIP
    >>> lp(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
    torch.Size([2])
    """

    def __init__(self, net: str = "alex", reduction: str = "none"):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"expected net in {sorted(LPIPS_NETS)}, got {net!r}")
        import lpips as lpips_pkg

        self.net_name = net
        self.backbone = LPIPS_NETS[net]
        self.reduction = reduction
        self.min_size = LPIPS_MIN_SIZE[net]
        state = W.load_backbone_state(self.backbone)  # MissingWeightsError first, before any work
        W.warn_standin(self.backbone)
        # Build the package's architecture on the meta device: no random init of the ImageNet
        # classifier, and no chance of torchvision downloading anything (pnet_rand=True).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated"
            with torch.device("meta"):
                model = lpips_pkg.LPIPS(pretrained=False, net=net, version="0.1", lpips=True,
                                        pnet_rand=True, verbose=False)
        model.net.to_empty(device="cpu")
        model.lins.to_empty(device="cpu")
        model.scaling_layer = lpips_pkg.ScalingLayer()  # its buffers are constants, rebuild off meta
        model.net.load_state_dict(_map_features(state, model.net), strict=True)
        heads = torch.load(lpips_head_path(net), map_location="cpu", weights_only=True)
        # "lin{k}.model.1.weight" -> model.lins[k] (the same modules), checked strictly
        heads = {k[3:]: v for k, v in heads.items() if k.startswith("lin")}
        model.lins.load_state_dict(heads, strict=True)
        meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if meta:
            raise RuntimeError(f"LPIPS: tensors left uninitialised: {meta[:4]}")
        self.scaling = model.scaling_layer
        self.trunk = model.net
        self.lins = model.lins
        self._freeze()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        validate_images(x, y, name=f"lpips-{self.net_name}", min_size=self.min_size)
        fx = self.trunk(self.scaling(2.0 * x - 1.0))
        fy = self.trunk(self.scaling(2.0 * y - 1.0))
        total = x.new_zeros(x.shape[0])
        for lin, a, b in zip(self.lins, fx, fy):
            d = (_safe_unit(a) - _safe_unit(b)).pow(2)
            total = total + lin(d).mean(dim=(1, 2, 3))
        return reduce(total, self.reduction)


# ----------------------------------------------------------------------------------------------------
# DISTS


class L2Pool(nn.Module):
    """L2 pooling (Hénaff & Simoncelli): sqrt(hann3x3 * x² + 1e-12), stride 2, per channel.

    Parameters
    ----------
    channels : int
        Channel count of the input (the filter is depthwise).

    Examples
    --------
    >>> import torch
    >>> L2Pool(4)(torch.rand(1, 4, 8, 8)).shape
    torch.Size([1, 4, 4, 4])
    """

    kernel: torch.Tensor

    def __init__(self, channels: int):
        super().__init__()
        w = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]  # [0.5, 1, 0.5]
        k = w[:, None] * w[None, :]
        k = (k / k.sum()).float()
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def dists_weights_path() -> Path:
    """``weights.pt`` (alpha, beta) of the installed ``DISTS_pytorch`` distribution.

    Returns
    -------
    pathlib.Path
        The file, found through the distribution's file list (not ``sys.prefix``).

    Raises
    ------
    MissingWeightsError
        When ``DISTS_pytorch`` or its weights file is not installed.
    """
    try:
        dist = importlib.metadata.distribution("DISTS_pytorch")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    candidates = []
    if dist is not None:
        files = [f for f in (dist.files or []) if f.name == "weights.pt"]
        # prefer the copy inside the package folder over the one the wheel puts in sys.prefix
        files.sort(key=lambda f: 0 if "DISTS_pytorch" in f.parts else 1)
        candidates = [Path(str(dist.locate_file(f))).resolve() for f in files]
    for p in candidates:
        if p.is_file():
            return p
    raise MissingWeightsError(
        "DISTS alpha/beta weights (weights.pt of the `DISTS_pytorch` package) not found"
        + (f" (looked at {', '.join(map(str, candidates))})" if candidates else "")
        + "; install them with `pip install DISTS_pytorch`"
    )


_VGG16_CFG: list[int | str] = [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512]
_VGG16_CUTS = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class VGG16Trunk(_FrozenEval):
    """VGG16 ``features`` with every max-pool replaced by L2 pooling: the six DISTS stages.

    ``forward(x)`` takes float RGB (N, 3, H, W) in [0, 1], applies the ImageNet normalisation and
    returns six feature maps: the input itself, then relu1_2 (64 ch, H x W), relu2_2 (128, ~H/2),
    relu3_3 (256, ~H/4), relu4_3 (512, ~H/8) and relu5_3 (512, ~H/16). Channel counts are
    :attr:`CHANNELS`. Parameters are frozen; the module is always in eval mode; gradients flow to
    the input. Shared by DISTS and the learned DPIS metric (build it with :func:`vgg16_trunk`).

    Parameters
    ----------
    state : dict
        torchvision's ``vgg16`` state_dict (``features.{i}.weight``/``bias``; the classifier is
        ignored).

    Raises
    ------
    RuntimeError
        When the state_dict's ``features`` do not match VGG16's.

    Examples
    --------
    >>> import torchvision
    >>> state = torchvision.models.vgg16(weights=None).state_dict()   # random weights: shapes only
    >>> [f.shape[1] for f in VGG16Trunk(state)(torch.rand(1, 3, 32, 32))]
    [3, 64, 128, 256, 512, 512]
    """

    CHANNELS = (3, 64, 128, 256, 512, 512)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16_CFG:
            if v == "P":
                layers.append(L2Pool(cin))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        feats = nn.Sequential(*layers)
        fstate = {k[len("features."):]: v for k, v in state.items()
                  if k.startswith("features.") and int(k.split(".")[1]) < len(layers)}
        missing, unexpected = feats.load_state_dict(fstate, strict=False)
        missing = [k for k in missing if not k.endswith("kernel")]  # L2Pool buffers are ours
        if missing or unexpected:
            raise RuntimeError(f"VGG16 trunk: vgg16 state_dict does not match: {(missing + unexpected)[:4]}")
        self.stages = nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in _VGG16_CUTS)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self._freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six stage outputs for ``x`` (float RGB NCHW in [0, 1]); see the class docstring."""
        h = (x - self.mean) / self.std
        out = [x]
        for st in self.stages:
            h = st(h)
            out.append(h)
        return out


def vgg16_trunk(state: dict[str, torch.Tensor] | None = None) -> VGG16Trunk:
    """Build the VGG16 + L2-pooling trunk of DISTS (and DPIS) from verified ImageNet weights.

    Parameters
    ----------
    state : dict, optional
        A torchvision ``vgg16`` state_dict. Default: the verified backbone file
        (:func:`lossarena.metrics.weights.load_backbone_state`), never downloaded; a stand-in
        backbone emits :class:`~lossarena.metrics.weights.StandInWeightsWarning`.

    Returns
    -------
    VGG16Trunk
        On the CPU in float32, frozen, in eval mode; ``forward(x)`` returns six feature maps.

    Raises
    ------
    MissingWeightsError
        When ``state`` is not given and ``vgg16-397923af.pth`` is not in the torchvision cache.

    References
    ----------
    K. Ding, K. Ma, S. Wang, E. P. Simoncelli, "Image Quality Assessment: Unifying Structure and
    Texture Similarity", IEEE TPAMI 44(5), 2022 (L2 pooling after Hénaff & Simoncelli 2016).

    Examples
    --------
    >>> from lossarena.metrics.deep import vgg16_trunk
    >>> trunk = vgg16_trunk()                                  # doctest: +SKIP
    >>> [f.shape[1] for f in trunk(torch.rand(1, 3, 64, 64))]  # doctest: +SKIP
    [3, 64, 128, 256, 512, 512]
    """
    if state is None:
        state = W.load_backbone_state("vgg16")
        W.warn_standin("vgg16")
    return VGG16Trunk(state)


class DISTS(_FrozenEval):
    """DISTS distance, ``forward(x_distorted, y_reference) -> (N,)`` for [0, 1] RGB NCHW inputs;
    lower is better, 0 for identical images.

    Any size from 16 px; never resized (the authors' demo also scores full-size images).

    Parameters
    ----------
    reduction : {"none", "mean", "sum"}
        ``"none"``: per-image values (N,).

    Raises
    ------
    MissingWeightsError
        When ``vgg16-397923af.pth`` or the ``DISTS_pytorch`` alpha/beta file is missing.

    References
    ----------
    K. Ding, K. Ma, S. Wang, E. P. Simoncelli, "Image Quality Assessment: Unifying Structure and
    Texture Similarity", IEEE TPAMI 44(5), 2022.

    Examples
    --------
    >>> import torch
    >>> d = DISTS()                             # doctest: +SKIP
    >>> d(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).shape  # doctest: +SKIP
    torch.Size([1])
    """

    chns = VGG16Trunk.CHANNELS
    alpha: torch.Tensor
    beta: torch.Tensor

    def __init__(self, reduction: str = "none"):
        super().__init__()
        self.reduction = reduction
        self.trunk = vgg16_trunk()  # MissingWeightsError first, before any work
        ab = torch.load(dists_weights_path(), map_location="cpu", weights_only=True)
        alpha, beta = ab["alpha"].float(), ab["beta"].float()
        if alpha.shape != (1, sum(self.chns), 1, 1) or beta.shape != alpha.shape:
            raise RuntimeError(f"DISTS: expected alpha/beta of shape (1, {sum(self.chns)}, 1, 1), "
                               f"got {tuple(alpha.shape)} and {tuple(beta.shape)}")
        wsum = alpha.sum() + beta.sum()
        self.register_buffer("alpha", (alpha / wsum).flatten())
        self.register_buffer("beta", (beta / wsum).flatten())
        self._freeze()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six trunk stages of ``x`` (see :class:`VGG16Trunk`)."""
        out: list[torch.Tensor] = self.trunk(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        validate_images(x, y, name="dists", min_size=DISTS_MIN_SIZE)
        c1 = c2 = 1e-6
        fx, fy = self.features(x), self.features(y)
        alphas = torch.split(self.alpha, list(self.chns))
        betas = torch.split(self.beta, list(self.chns))
        sim = x.new_zeros(x.shape[0])
        for a, b, wa, wb in zip(fx, fy, alphas, betas):
            ma, mb = a.mean(dim=(2, 3)), b.mean(dim=(2, 3))
            va = (a - ma[..., None, None]).pow(2).mean(dim=(2, 3))
            vb = (b - mb[..., None, None]).pow(2).mean(dim=(2, 3))
            cov = (a * b).mean(dim=(2, 3)) - ma * mb
            texture = (2 * ma * mb + c1) / (ma * ma + mb * mb + c1)
            structure = (2 * cov + c2) / (va + vb + c2)
            sim = sim + (texture * wa).sum(1) + (structure * wb).sum(1)
        return reduce(1.0 - sim, self.reduction)


# ----------------------------------------------------------------------------------------------------
# functional forms with a network cache, and registration

_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "lpips-alex": lambda: LPIPS("alex"),
    "lpips-vgg": lambda: LPIPS("vgg"),
    "lpips-squeeze": lambda: LPIPS("squeeze"),
    "dists": DISTS,
}
_BACKBONE_OF = {"lpips-alex": "alexnet", "lpips-vgg": "vgg16", "lpips-squeeze": "squeezenet1_1", "dists": "vgg16"}
_CACHE: dict[tuple[Any, ...], nn.Module] = {}


def cached_network(name: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The network for deep metric ``name`` on (device, dtype), built once per backbone file version.

    Parameters
    ----------
    name : {"lpips-alex", "lpips-vgg", "lpips-squeeze", "dists"}
        Registry name.
    device, dtype
        Where and in which dtype the network runs.

    Returns
    -------
    torch.nn.Module
        Frozen, in eval mode; ``forward(x, y) -> (N,)``.

    Raises
    ------
    MissingWeightsError
        When the backbone file is missing.
    """
    path = W.require_backbone(_BACKBONE_OF[name])  # re-checked every call: cheap (hash is cached)
    st = path.stat()
    key = (name, str(device), dtype, str(path), st.st_mtime_ns, st.st_size)
    net = _CACHE.get(key)
    if net is None:
        for k in [k for k in _CACHE if k[:3] == key[:3]]:
            del _CACHE[k]  # the backbone file changed
        net = _FACTORIES[name]().to(device=device, dtype=dtype)
        _CACHE[key] = net
    return net


def clear_cache() -> None:
    """Drop every cached deep-metric network (they are rebuilt on the next call)."""
    _CACHE.clear()


def _functional(name: str, min_size: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        validate_images(x, y, name=name, min_size=min_size)
        return cached_network(name, x.device, x.dtype)(x, y)

    fn.__name__ = name.replace("-", "_")
    fn.__doc__ = f"{name}(x_distorted, y_reference) -> (N,) distance; lower is better, 0 for identical images."
    return fn


_LPIPS_CITE = ("R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang. The Unreasonable Effectiveness of Deep "
               "Features as a Perceptual Metric. CVPR 2018 (LPIPS v0.1 heads)")
_DISTS_CITE = ("K. Ding, K. Ma, S. Wang, E. P. Simoncelli. Image Quality Assessment: Unifying Structure and "
               "Texture Similarity. IEEE TPAMI 44(5), 2022 (arXiv 2004.07728, 2020)")

for _net, _aliases in (("alex", ("lpips",)), ("vgg", ()), ("squeeze", ())):
    _name = f"lpips-{_net}"
    register_metric(MetricSpec(
        name=_name, lower_better=True, differentiable=True, citation=_LPIPS_CITE,
        function=_functional(_name, LPIPS_MIN_SIZE[_net]), module=functools.partial(LPIPS, _net),
        needs_weights=(LPIPS_NETS[_net],), min_size=LPIPS_MIN_SIZE[_net], best_value=0.0,
        description=f"LPIPS v0.1, {LPIPS_NETS[_net]} trunk (ImageNet) + learned linear heads",
        aliases=_aliases,
    ))

register_metric(MetricSpec(
    name="dists", lower_better=True, differentiable=True, citation=_DISTS_CITE,
    function=_functional("dists", DISTS_MIN_SIZE), module=DISTS,
    needs_weights=("vgg16",), min_size=DISTS_MIN_SIZE, best_value=0.0,
    description="DISTS: VGG16 with L2 pooling, texture + structure similarity (never resizes)",
))

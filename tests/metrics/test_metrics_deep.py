"""LPIPS and DISTS: parity with the ``lpips`` and ``DISTS_pytorch`` packages, weights plumbing.

The ImageNet backbones are not available here, so parity runs on seeded *stand-in* backbones
(``tests/standin.py``) written under torchvision's file names into a temporary TORCH_HOME: the same
files feed our metrics (through ``lossarena.metrics.weights``, with the test-only escape hatch) and
the two packages (through ``torchvision.models.*(pretrained=True)``). torchvision's own loader,
``torch.hub.load_state_dict_from_url``, checks the SHA-256 only when it *downloads*; a file already
in the cache is loaded as is, so the packages read the stand-ins without any patching. To prove that
nothing is fetched, every test here replaces ``torch.hub.download_url_to_file`` with a function that
fails. The numbers are plumbing checks, not LPIPS/DISTS values: stand-in numbers are never reported.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from lossarena.pipeline.cli import main as lossarena_main
from standin import use_torch_home, write_standins

from lossarena.errors import MissingWeightsError
from lossarena.metrics import compute, get_loss, get_metric
from lossarena.metrics import deep as D
from lossarena.metrics import weights as W
from lossarena.paths import require_shared

pytest_plugins = ("standin",)  # fixtures standin_root, standin_home, empty_home

LPIPS_NETS = ["alex", "vgg", "squeeze"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    import torch.hub

    def refuse(url, *a, **k):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _pair(size=40, n=2, seed=0):
    """A photo crop (scikit-image's bundled astronaut) and a noisy + blurred copy, batch of n."""
    from skimage import data

    g = torch.Generator().manual_seed(seed)
    img = torch.from_numpy(data.astronaut()[100:100 + size * n:n, 150:150 + size].copy()).float() / 255
    y = img.permute(2, 0, 1)[None].repeat(n, 1, 1, 1).contiguous()
    y[1:] = y[1:].flip(-1)
    x = (torch.nn.functional.avg_pool2d(y, 3, 1, 1) + 0.05 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    return x, y


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _package_model(fn, *a, **k):
    """Build an ``lpips`` / ``DISTS_pytorch`` model without torch's random init.

    The packages build a full torchvision model (VGG16: 138 M parameters, seconds of random init)
    and then overwrite every parameter they use from the stand-in file (``strict=True``), the LPIPS
    heads and the DISTS alpha/beta from their own files. Skipping the init changes no value, only time.
    """
    import torch.nn.init as init

    names = ["kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "constant_", "xavier_uniform_"]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda t, *a_, **k_: t)
        return _quiet(fn, *a, **k)
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


# ----------------------------------------------------------------------------------------------------
# parity


@pytest.mark.parametrize("net", LPIPS_NETS)
def test_lpips_parity_with_package(standin_home, net):
    import lpips

    x, y = _pair()
    ours = compute(f"lpips-{net}", x, y)
    ref_pkg = _package_model(lpips.LPIPS, net=net, version="0.1", verbose=False)
    with torch.no_grad():
        theirs_01 = ref_pkg(x, y, normalize=True).flatten()  # [0, 1] inputs, normalize=True
        theirs_11 = ref_pkg(2 * x - 1, 2 * y - 1).flatten()  # the package's native [-1, 1]
    assert ours.shape == (2,)
    assert float(ours.min()) > 0
    assert (ours - theirs_01).abs().max().item() <= 1e-6
    assert (ours - theirs_11).abs().max().item() <= 1e-6
    # ... and the same gradient
    xg = x.clone().requires_grad_()
    compute(f"lpips-{net}", xg, y).sum().backward()
    xp = x.clone().requires_grad_()
    ref_pkg(xp, y, normalize=True).sum().backward()
    assert torch.allclose(xg.grad, xp.grad, rtol=1e-4, atol=1e-9)


def test_dists_parity_with_package(standin_home):
    from DISTS_pytorch import DISTS as PkgDISTS

    x, y = _pair()
    pkg = _package_model(PkgDISTS)
    ours = compute("dists", x, y)
    xp = x.clone().requires_grad_()
    theirs = pkg(xp, y, require_grad=True)
    assert (ours - theirs.detach()).abs().max().item() <= 1e-6
    # our features carry gradients without any flag, equal to the package's require_grad=True ones
    xg = x.clone().requires_grad_()
    compute("dists", xg, y).sum().backward()
    theirs.sum().backward()
    assert torch.allclose(xg.grad, xp.grad, rtol=1e-4, atol=1e-9)
    # the package's default (require_grad=False) computes the VGG features under no_grad: the image
    # gets only the gradient of the stage-0 (raw pixel) term, not the deep ones. The defect we fix.
    xn = x.clone().requires_grad_()
    pkg(xn, y).sum().backward()
    assert not torch.allclose(xn.grad, xp.grad, rtol=0.1, atol=0)


def test_dists_never_resizes(standin_home, monkeypatch):
    """piq's DISTS resizes inputs whose side exceeds 256 px; ours scores them at full size.

    A 24x272 image (one side over 256, cheap) scores as the package does (it never resizes in
    ``forward``), and no resampling function is called on the way.
    """
    from DISTS_pytorch import DISTS as PkgDISTS

    g = torch.Generator().manual_seed(3)
    y = torch.rand(1, 3, 24, 272, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        theirs = _package_model(PkgDISTS)(x, y).reshape(1)

    def refuse(*a, **k):
        raise AssertionError("resampling called")

    monkeypatch.setattr(torch.nn.functional, "interpolate", refuse)
    ours = compute("dists", x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_dists_alpha_beta_from_installed_package(standin_home):
    import importlib.metadata

    p = D.dists_weights_path()
    assert p.name == "weights.pt" and p.parent.name == "DISTS_pytorch"
    dist = importlib.metadata.distribution("DISTS_pytorch")
    assert p == __import__("pathlib").Path(str(dist.locate_file("DISTS_pytorch/weights.pt"))).resolve()
    w = torch.load(p, weights_only=True)
    net = D.cached_network("dists", torch.device("cpu"), torch.float32)
    s = w["alpha"].sum() + w["beta"].sum()
    assert torch.allclose(net.alpha, (w["alpha"] / s).flatten())
    assert torch.allclose(net.beta, (w["beta"] / s).flatten())
    shared = require_shared("weights", "dists", "weights.pt")
    ws = torch.load(shared, weights_only=True)
    assert torch.equal(ws["alpha"], w["alpha"]) and torch.equal(ws["beta"], w["beta"])


def test_dists_missing_package_weights_is_clear(monkeypatch):
    import importlib.metadata

    def none(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", none)
    with pytest.raises(MissingWeightsError, match="pip install DISTS_pytorch"):
        D.dists_weights_path()


def test_lpips_heads_come_from_the_wheel():
    import lpips

    for net in LPIPS_NETS:
        p = D.lpips_head_path(net)
        assert p.parent.name == "v0.1" and p.parent.parent.parent == __import__("pathlib").Path(lpips.__file__).parent


def test_safe_unit_matches_lpips_and_has_finite_gradient():
    import lpips

    f = torch.randn(2, 8, 5, 5)
    f[0, :, 1, 1] = 0  # an all-zero feature column
    assert torch.allclose(D._safe_unit(f), lpips.normalize_tensor(f), atol=1e-7)
    z = torch.zeros(1, 4, 2, 2, requires_grad=True)
    (lpips.normalize_tensor(z) - 1).pow(2).sum().backward()
    assert torch.isnan(z.grad).all()  # the package's gradient at zero features
    z2 = torch.zeros(1, 4, 2, 2, requires_grad=True)
    (D._safe_unit(z2) - 1).pow(2).sum().backward()
    assert torch.isfinite(z2.grad).all()


# ----------------------------------------------------------------------------------------------------
# module behaviour


@pytest.mark.parametrize("name", ["lpips-alex", "lpips-vgg", "lpips-squeeze", "dists"])
def test_cache_frozen_eval_and_min_size(standin_home, name):
    net = D.cached_network(name, torch.device("cpu"), torch.float32)
    assert D.cached_network(name, torch.device("cpu"), torch.float32) is net
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    assert not any(m.training for m in net.modules())  # LPIPS heads carry dropout: never active
    spec = get_metric(name)
    assert spec.lower_better and spec.differentiable and spec.best_value == 0.0
    assert spec.needs_weights == (D._BACKBONE_OF[name],)
    s = spec.min_size
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 3, s, s, generator=g), torch.rand(1, 3, s, s, generator=g)
    v = compute(name, x, y)
    assert torch.isfinite(v).all()
    if name == "lpips-squeeze":  # one network per dtype (float64 checked on the cheapest trunk)
        assert D.cached_network(name, torch.device("cpu"), torch.float64) is not net
        v64 = compute(name, x.double(), y.double())
        assert v64.dtype == torch.float64 and torch.allclose(v64.float(), v, atol=1e-5)
    with pytest.raises(ValueError, match=f"expected images of at least {s}x{s}"):
        compute(name, x[..., 1:, 1:], y[..., 1:, 1:])


def test_lpips_alias_and_loss(standin_home):
    assert get_metric("lpips") is get_metric("lpips-alex")
    x, y = _pair()
    assert torch.equal(compute("lpips", x, y), compute("lpips-alex", x, y))
    mod = _quiet(get_metric("lpips").module)  # the module form: its own network, same numbers
    assert isinstance(mod, D.LPIPS) and mod is not D.cached_network("lpips-alex", x.device, x.dtype)
    assert torch.allclose(mod(x, y), compute("lpips-alex", x, y), atol=1e-7)
    xg = x.clone().requires_grad_()
    loss = get_loss("lpips")
    v = loss(xg, y)
    v.backward()
    assert v.dim() == 0 and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------------
# weights: missing, stand-in escape hatch


@pytest.mark.parametrize("name", ["lpips-alex", "lpips-vgg", "lpips-squeeze", "dists"])
def test_missing_weights_error_names_file_and_commands(empty_home, name):
    bb = W.BACKBONES[D._BACKBONE_OF[name]]
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(MissingWeightsError) as e:
        compute(name, x, x)
    msg = str(e.value)
    assert bb.filename in msg and str(empty_home) in msg
    assert "lossarena weights download" in msg and "lossarena weights status" in msg
    with pytest.raises(MissingWeightsError):
        get_metric(name).module()


def test_standin_needs_both_env_and_sidecar(standin_root, tmp_path, monkeypatch):
    # 1. stand-in files + sidecars, but the variable unset (or not exactly "1"): bad hash
    use_torch_home(monkeypatch, standin_root, standin=False)
    st = W.backbone_status("alexnet")
    assert st.present and st.hash_ok is False and not st.ok and st.state == "bad hash"
    with pytest.raises(MissingWeightsError, match="fails its SHA-256 check"):
        W.require_backbone("alexnet")
    monkeypatch.setenv(W.STANDIN_ENV, "true")
    assert not W.backbone_status("alexnet").ok
    # 2. the variable set, but a random file without sidecar (e.g. a corrupt download): bad hash
    home = tmp_path / "home"
    ck = write_standins(home, ["alexnet"])
    (ck / (W.BACKBONES["alexnet"].filename + W.STANDIN_SUFFIX)).unlink()
    use_torch_home(monkeypatch, home, standin=True)
    assert W.backbone_status("alexnet").state == "bad hash"
    # 3. a sidecar with another file's digest: bad hash
    (ck / (W.BACKBONES["alexnet"].filename + W.STANDIN_SUFFIX)).write_text("0" * 64 + "\n")
    assert W.backbone_status("alexnet").state == "bad hash"
    # 4. both: accepted, but flagged everywhere
    use_torch_home(monkeypatch, standin_root, standin=True)
    st = W.backbone_status("alexnet")
    assert st.ok and st.standin and st.state == "stand-in"
    assert W.standin_in_use(["alexnet", "vgg16"]) == ["alexnet", "vgg16"]
    with pytest.warns(W.StandInWeightsWarning, match="numbers are not real"):
        D.LPIPS("alex")


def test_real_checkpoint_name_hash_rule():
    for b in W.BACKBONES.values():
        assert len(b.hash_prefix) == 8 and b.url.endswith(b.filename)
        int(b.hash_prefix, 16)


def test_weights_status_cli(standin_home, tmp_path, capsys, monkeypatch):
    assert lossarena_main(["weights", "status"]) == 0
    out, err = capsys.readouterr()
    assert str(W.checkpoint_dir()) in out
    for b in W.BACKBONES.values():
        assert b.filename in out
    assert out.count("STAND-IN") == 3
    assert W.STANDIN_BANNER in err
    use_torch_home(monkeypatch, tmp_path, standin=False)
    assert lossarena_main(["weights", "status"]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] in W.BACKBONES]
    assert len(lines) == 3 and all(ln.split()[1] == "missing" for ln in lines)
    assert "lossarena weights download" in out
    assert W.STANDIN_BANNER not in err


def test_metrics_score_missing_weights_exit_3(empty_home, tmp_path, capsys):
    from lossarena.data.images import save_image

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    x, y = _pair(n=1)
    save_image(y, a)
    save_image(x, b)
    assert lossarena_main(["metrics", "score", str(a), str(b), "-m", "lpips"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "alexnet-owt-7be5be79.pth" in err
    assert "lossarena weights download" in err and "lossarena weights status" in err
    # the default set skips metrics whose weights are missing
    assert lossarena_main(["metrics", "score", str(a), str(b), "--json"]) == 0
    out = capsys.readouterr().out
    assert "lpips" not in out and "dists" not in out and '"mse"' in out


def test_metrics_score_standin_is_flagged(standin_home, tmp_path, capsys):
    import json

    from lossarena.data.images import save_image

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    x, y = _pair(n=1)
    save_image(y, a)
    save_image(x, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", W.StandInWeightsWarning)
        assert lossarena_main(["metrics", "score", str(a), str(b), "-m", "lpips", "-m", "dists", "--json"]) == 0
    cap = capsys.readouterr()
    vals = json.loads(cap.out)
    assert set(vals) == {"lpips", "dists"} and all(np.isfinite(v) for v in vals.values())  # keys as given
    assert W.STANDIN_BANNER in cap.err
    assert lossarena_main(["metrics", "score", str(a), str(b), "-m", "lpips", "-m", "mse"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "STAND-IN" in lines[0] and "STAND-IN" not in lines[1]  # each stand-in number says so
    assert lossarena_main(["metrics", "list"]) == 0
    cap = capsys.readouterr()
    assert "STAND-IN" in cap.out and W.STANDIN_BANNER in cap.err


def test_dists_real_weights_reproduce_authors_demo(monkeypatch):
    """Only with the real, verified VGG16: DISTS(r0, r1) = 0.3347 as in the authors' DISTS_pt.py demo."""
    monkeypatch.delenv(W.STANDIN_ENV, raising=False)
    st = W.backbone_status("vgg16")
    if not (st.present and st.hash_ok):
        pytest.skip(f"real ImageNet VGG16 not present ({st.path}); `lossarena weights download`")
    from PIL import Image

    folder = require_shared("weights", "dists")

    def rgb(p):  # the demo does Image.open(...).convert("RGB")
        a = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(a).permute(2, 0, 1)[None]

    v = compute("dists", rgb(folder / "r1.png"), rgb(folder / "r0.png"))
    assert abs(float(v) - 0.3347) < 1e-3


@pytest.fixture(autouse=True)
def _check_values_every_call(monkeypatch):
    """Values (NaN, 0-255) are range-checked once per (shape, dtype, device) outside debug mode; these
    tests check errors on shapes already seen, so they run in debug mode (lossarena.metrics.validate)."""
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")

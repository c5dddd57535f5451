"""Registry-wide zoo tests: every registered model is checked here, with no per-model code.

* train and deploy compute the same function: float64 to 1e-9 relative, float32 to 1e-4;
* reparameterize() is idempotent, and the deploy form has fewer modules;
* no parameter is left at a constant init (BN statistics and zero-init params are randomized);
* published params/MACs agree within 3% (shared/REFERENCE.md) — counted at the paper's input size.
"""

import copy

import pytest
import torch
from benchbench.models import create_model, list_models, model_info, reparameterize

from benchbench.metrics import count_model

MODELS = list_models()
F64_RTOL = 1e-9
F32_RTOL = 1e-4


def _small_size(name):
    info = model_info(name)
    return (max(info.min_input, 64),) * 2


def _rel_err(a, b):
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item()


def _outputs(model, x):
    out = model(x)
    return torch.cat([o.flatten(1) for o in out], 1) if isinstance(out, (tuple, list)) else out


@pytest.mark.parametrize("name", MODELS)
def test_train_deploy_equivalent(name):
    size = _small_size(name)
    train = create_model(name, "train", input_size=size, seed=1).double()
    assert not train.training
    deploy = reparameterize(copy.deepcopy(train))
    channels = model_info(name).input_size[0]
    x = torch.randn(2, channels, *size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        ref = _outputs(train, x)
        out = _outputs(deploy, x)
        assert torch.isfinite(ref).all()
        assert ref.abs().max() > 0
        assert _rel_err(ref, out) < F64_RTOL, f"float64 train/deploy mismatch: {_rel_err(ref, out):.3g}"
        # Idempotent: a second pass changes nothing.
        again = _outputs(reparameterize(deploy), x)
        assert torch.equal(out, again)
        # float32, converted in float32 as a user would.
        t32 = create_model(name, "train", input_size=size, seed=1)
        d32 = create_model(name, "deploy", input_size=size, seed=1)
        x32 = x.float()
        assert _rel_err(_outputs(t32, x32), _outputs(d32, x32)) < F32_RTOL
    n_train, n_deploy = len(list(train.modules())), len(list(deploy.modules()))
    if model_info(name).identical_forms:
        assert n_deploy == n_train
    else:
        assert n_deploy < n_train, "the deploy form should drop training branches"


@pytest.mark.parametrize("name", MODELS)
def test_no_constant_parameters_after_randomize(name):
    model = create_model(name, "train", input_size=_small_size(name))
    for pname, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        if flat.numel() > 1:
            assert not torch.all(flat == flat[0]), f"{pname} is still constant ({flat[0].item()})"


PUBLISHED = [(n, pub) for n in MODELS for pub in model_info(n).published]


@pytest.mark.parametrize("name,pub", PUBLISHED, ids=[f"{n}-{p.variant}" for n, p in PUBLISHED])
def test_published_counts(name, pub):
    info = model_info(name)
    with torch.device("meta"):  # shapes only: counting needs no arithmetic
        model = create_model(name, pub.variant, randomize=False)
        x = torch.zeros(1, *info.input_size)
    counts = count_model(model, x)  # the same counter every build records (benchbench.metrics)
    if pub.params is not None:
        params = counts["params"]
        assert params == pytest.approx(pub.params, rel=0.03), f"params {params / 1e6:.2f}M vs {pub.source}"
    if pub.macs is not None:
        macs = counts["macs"]
        assert macs == pytest.approx(pub.macs, rel=0.03), f"MACs {macs / 1e9:.3f}G vs {pub.source}"


def test_vanillanet_refuses_to_merge_before_lambda_reaches_one():
    model = create_model("vanillanet_5", input_size=(64, 64))
    model.set_act_learn(0.5)
    with pytest.raises(ValueError, match="act_learn"):
        reparameterize(model)

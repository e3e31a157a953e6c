"""GANAug.complete: layouts and dtypes, untouched visible pixels, determinism, and the edge-case masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganaug import GANAug
from ganaug.sampling.completion import diffusion_fill, feather_mask


@pytest.fixture(scope="module")
def gan(tiny_run):
    return GANAug.from_pretrained(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def images(embedded_test):
    return embedded_test.images[:3]


def _centre_hole(size: int = 28, start: int = 9, end: int = 19) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[start:end, start:end] = True
    return mask


def test_feather_mask_band():
    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 5:7, 5:7] = 1
    weights = feather_mask(mask, 2)
    assert torch.equal(weights[..., 5:7, 5:7], torch.ones(1, 1, 2, 2))
    assert weights[0, 0, 5, 4] == pytest.approx(2 / 3) and weights[0, 0, 5, 3] == pytest.approx(1 / 3)
    assert weights[0, 0, 5, 2] == 0 and weights[0, 0, 0, 0] == 0
    assert torch.equal(feather_mask(mask, 0), mask)


@pytest.mark.parametrize("channels", [1, 3])
def test_diffusion_fill_continues_the_surroundings(channels):
    # left half dark, right half bright; a hole across the edge is filled from each side, visible pixels stay
    images = torch.full((2, channels, 16, 16), 0.2)
    images[..., 8:] = 0.8
    visible = torch.ones(2, 1, 16, 16)
    visible[0, :, 4:12, 2:6] = 0      # inside the dark half
    visible[1, :, 4:12, 10:14] = 0    # inside the bright half
    filled = diffusion_fill(images, visible)
    assert filled.shape == images.shape and filled.dtype == images.dtype
    assert torch.equal(filled * visible, images * visible)
    assert torch.allclose(filled[0, :, 4:12, 2:6], torch.tensor(0.2), atol=1 / 255)
    assert torch.allclose(filled[1, :, 4:12, 10:14], torch.tensor(0.8), atol=1 / 255)
    assert torch.equal(diffusion_fill(images, torch.ones(2, 1, 16, 16)), images)


def test_shape_dtype_and_untouched_pixels_for_every_layout(gan, images):
    mask = _centre_hole()
    band = feather_mask(mask.float()[None, None], 2)[0, 0] > 0  # where pixels may change
    as_float = images.float() / 255
    cases = [
        images,                                                    # torch uint8 (N, 1, H, W)
        as_float[0],                                               # torch float (1, H, W)
        images[0, 0].numpy(),                                      # numpy uint8 (H, W)
        as_float[:2].permute(0, 2, 3, 1).expand(-1, -1, -1, 3).numpy().copy(),   # numpy float32 RGB (N, H, W, 3)
    ]
    for case in cases:
        out = gan.complete(case, mask, steps=2, seed=0)
        assert type(out) is type(case) and out.shape == case.shape and out.dtype == case.dtype
        before, after = (torch.as_tensor(np.asarray(x)) for x in (case, out))
        if isinstance(case, np.ndarray) and case.ndim == 4:  # (N, H, W, C): put H, W last
            before, after = before.movedim(-1, 0), after.movedim(-1, 0)
        assert torch.equal(after[..., ~band], before[..., ~band])
        assert not torch.equal(after[..., band], before[..., band])


def test_deterministic_for_a_seed(gan, images):
    mask = _centre_hole()
    first = gan.complete(images, mask, steps=3, seed=4)
    assert torch.equal(first, gan.complete(images, mask, steps=3, seed=4))
    assert not torch.equal(first, gan.complete(images, mask, steps=3, seed=5))
    labelled = gan.complete(images, mask, labels=[1, 2, 3], steps=3, seed=4)
    assert labelled.shape == images.shape
    masks = mask.expand(len(images), -1, -1).clone()
    masks[0] = False  # the first image needs no completion: the others' results must not move
    other = gan.complete(images, masks, labels=[1, 2, 3], steps=3, seed=4)
    assert torch.equal(other[0], images[0]) and torch.equal(other[1:], labelled[1:])


def test_without_labels_one_of_the_fitted_classes_is_kept(gan, images):
    """label_candidates fits several classes and returns one of those completions, whole."""
    mask = _centre_hole()
    chosen = gan.complete(images, mask, steps=2, seed=4, label_candidates=3).float()
    per_class = torch.stack([gan.complete(images, mask, labels=c, steps=2, seed=4).float()
                             for c in range(gan.num_classes)])  # (classes, N, C, H, W)
    difference = (per_class - chosen[None]).abs().flatten(2).amax(dim=2)  # (classes, N)
    assert (difference.min(dim=0).values <= 1).all()  # each image equals some class's completion (uint8 rounding)
    assert (difference.max(dim=0).values > 1).all()  # and the classes really differ


def test_per_image_masks_and_edge_cases(gan, images):
    masks = torch.zeros(3, 28, 28, dtype=torch.uint8)
    masks[1, :10] = 1                      # partly masked
    masks[2] = 1                           # fully masked
    with pytest.raises(ValueError, match=r"images \[2\] are fully masked: give labels"):
        gan.complete(images, masks, steps=1, seed=0)
    out = gan.complete(images, masks, labels=[0, 4, 7], steps=1, seed=0)
    assert torch.equal(out[0], images[0])  # empty mask: unchanged
    assert torch.equal(out[1, :, 12:], images[1, :, 12:]) and not torch.equal(out[1, :, :10], images[1, :, :10])
    assert not torch.equal(out[2], images[2])  # a class sample
    empty = torch.zeros(28, 28, dtype=torch.bool)
    assert torch.equal(gan.complete(images, empty), images)


def test_bad_arguments(gan, images):
    with pytest.raises(ValueError, match=r"masks should be \(H, W\) or \(N, H, W\)"):
        gan.complete(images, torch.zeros(27, 28, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks should be"):
        gan.complete(images, torch.zeros(2, 28, 28, dtype=torch.bool))
    with pytest.raises(TypeError, match="masks should be bool or uint8"):
        gan.complete(images, torch.zeros(28, 28))
    with pytest.raises(TypeError, match="images should be a uint8 or float"):
        gan.complete(images.int(), _centre_hole())
    with pytest.raises(ValueError, match=r"with C in \(1, 3\)"):
        gan.complete(np.zeros((28, 28, 4), np.uint8), _centre_hole())
    with pytest.raises(ValueError, match="steps should be an int >= 0"):
        gan.complete(images, _centre_hole(), steps=-1)
    with pytest.raises(ValueError, match=r"labels should lie in \[0, 10\)"):
        gan.complete(images, _centre_hole(), labels=[0, 1, 10])


def test_complete_cli(tiny_run, embedded_test, tmp_path, capsys):
    import PIL.Image

    from ganaug.cli import main

    original = embedded_test.images[0, 0].numpy()
    PIL.Image.fromarray(original).save(tmp_path / "in.png")
    assert main(["complete", str(tiny_run), "--image", str(tmp_path / "in.png"), "--box", "5,6,10,8",
                 "--out", str(tmp_path / "out.png"), "--steps", "2"]) == 0
    out = np.asarray(PIL.Image.open(tmp_path / "out.png"))
    assert out.shape == (28, 28) and "filled 80 pixels" in capsys.readouterr().out
    assert np.array_equal(out[:3], original[:3]) and not np.array_equal(out[6:14, 5:15], original[6:14, 5:15])
    mask = np.zeros((28, 28), np.uint8)
    mask[20:, :] = 255
    PIL.Image.fromarray(mask).save(tmp_path / "mask.png")
    rgb = np.stack([original] * 3, axis=-1)
    PIL.Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert main(["complete", str(tiny_run), "--image", str(tmp_path / "rgb.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out_rgb.png"), "--steps", "1", "--class", "Bag"]) == 0
    out = np.asarray(PIL.Image.open(tmp_path / "out_rgb.png"))
    assert out.shape == (28, 28, 3) and np.array_equal(out[:17], rgb[:17])
    assert main(["complete", str(tiny_run), "--image", str(tmp_path / "in.png"), "--box", "20,20,10,10",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "should lie inside the 28x28 image" in capsys.readouterr().err
    PIL.Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small_mask.png")
    assert main(["complete", str(tiny_run), "--image", str(tmp_path / "in.png"), "--mask",
                 str(tmp_path / "small_mask.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "--mask should be 28x28" in capsys.readouterr().err


# --- GANCutoutFill in both pipelines ---------------------------------------------------------------

def _changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of the pixels that changed (2-D arrays)."""
    rows, cols = np.nonzero(before != after)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("adapter", ["albumentations", "torchvision"])
def test_cutout_fill_changes_only_a_hole_and_its_band(tiny_run, images, adapter):
    import albumentations as A
    from torchvision.transforms import v2

    from ganaug import albumentations as gan_albumentations
    from ganaug import transforms as gan_transforms

    args = dict(num_holes_range=(1, 1), hole_height_range=(0.25, 0.25), hole_width_range=(0.25, 0.25), feather=2)
    image = images[0, 0].numpy()
    if adapter == "albumentations":
        compose = A.Compose([gan_albumentations.GANCutoutFill(tiny_run, p=1.0, **args)], seed=3)
        outs = [compose(image=image, class_label=2)["image"], compose(image=image)["image"]]
        compose.set_random_seed(3)
        again = compose(image=image, class_label=2)["image"]
        restored = A.from_dict(A.to_dict(compose))
        assert restored.transforms[0].to_dict() == compose.transforms[0].to_dict()
    else:
        compose = v2.Compose([gan_transforms.GANCutoutFill(tiny_run, p=1.0, **args)])
        torch.manual_seed(3)
        tensor = torch.from_numpy(image)[None]
        outs = [compose(tensor, 2)[0][0].numpy(), compose(tensor)[0].numpy()]
        torch.manual_seed(3)
        again = compose(tensor, 2)[0][0].numpy()
    for out in outs:
        assert out.shape == image.shape and out.dtype == image.dtype
        height, width = _changed_box(image, out)
        assert 1 <= height <= 7 + 4 and 1 <= width <= 7 + 4  # a 7x7 hole plus a 2-pixel band on each side
    assert np.array_equal(outs[0], again)


def test_cutout_fill_torchvision_batch_and_types(tiny_run):
    import pickle

    import PIL.Image
    from torchvision import tv_tensors

    from ganaug.transforms import GANCutoutFill

    fill = GANCutoutFill(tiny_run, p=1.0, device="cpu")
    calls = []
    handle = fill.model.gan.generator.register_forward_hook(lambda *args: calls.append(1))
    batch = tv_tensors.Image(torch.rand(6, 3, 32, 32))
    out, labels = fill(batch, torch.arange(6))
    handle.remove()
    assert len(calls) == 1 and isinstance(out, tv_tensors.Image) and out.shape == batch.shape
    assert not torch.isclose(out, batch).all(dim=(1, 2, 3)).any()
    pil = fill(PIL.Image.new("RGB", (30, 20), (90, 90, 90)), 1)[0]
    assert pil.mode == "RGB" and pil.size == (30, 20)
    clone = pickle.loads(pickle.dumps(fill))
    assert not clone.model.loaded


def test_cutout_fill_arguments(tiny_run):
    from ganaug import albumentations as gan_albumentations
    from ganaug import transforms as gan_transforms

    for kwargs, pattern in ((dict(num_holes_range=(0, 1)), "num_holes_range"),
                            (dict(hole_height_range=(0.5, 0.2)), "hole_height_range"),
                            (dict(hole_width_range=(0.0, 0.2)), "hole_width_range"),
                            (dict(steps=-1), "steps")):
        for adapter in (gan_albumentations, gan_transforms):
            with pytest.raises(ValueError, match=pattern):
                adapter.GANCutoutFill(tiny_run, **kwargs)

"""The batch path after the DataLoader for "replace" and "mix": one draw from the sample bank per batch, by the
per-sample path's rule (p per image, bank positions, mix weights), seeded per distributed rank."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ganaug._util.rng import rank_generator
from ganaug.adapters.functional import bank_position, mix, mix_weight, params_from_uniforms
from ganaug.transforms import GANAugment

BANK = dict(bank_size=8, refresh_every=None, bank_seed=0, device="cpu")
RATIO = (0.2, 0.6)


def _batch(num=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num, 1, 28, 28), dtype=torch.uint8, generator=generator)
    return images, torch.arange(num) % 10


def test_tensor_uniforms_follow_the_scalar_rule():
    uniforms = torch.tensor([[0.0, 0.0], [0.37, 0.81], [1 - 2**-53, 1 - 2**-53], [0.5, 0.5], [0.999, 0.125]],
                            dtype=torch.float64)
    for bank_size in (1, 7, 256):
        params = params_from_uniforms(uniforms, "mix", bank_size, RATIO)
        scalar = params_from_uniforms(uniforms.tolist(), "mix", bank_size, RATIO)
        assert params.positions.tolist() == scalar.positions == [bank_position(u, bank_size) for u in
                                                                 uniforms[:, 0].tolist()]
        assert params.weights.tolist() == scalar.weights == [mix_weight(u, RATIO) for u in uniforms[:, 1].tolist()]
    assert params_from_uniforms(uniforms, "replace", 4, RATIO).weights is None
    with pytest.raises(ValueError, match="'replace' or 'mix', not 'variant'"):
        params_from_uniforms(uniforms, "variant", 4, RATIO)


def test_mix_takes_a_tensor_of_weights_as_it_takes_a_list():
    images, _ = _batch(16)
    synthetic, _ = _batch(16, seed=1)
    weights = torch.rand(16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(mix(images, synthetic, weights), mix(images, synthetic, weights.tolist()))
    floats = images.float() / 255
    assert torch.equal(mix(floats, synthetic, weights), mix(floats, synthetic, weights.tolist()))


@pytest.mark.parametrize("mode", ["replace", "mix"])
def test_the_batch_path_draws_from_the_bank_by_the_per_sample_rule(tiny_run, mode):
    """Each image: picked when its first uniform is below p, then its bank position and weight from the next two."""
    transform = GANAugment(tiny_run, mode=mode, p=0.5, mix_ratio=RATIO, seed=11, **BANK)
    images, labels = _batch()
    out, out_labels = transform(images, labels)
    assert out_labels is labels
    uniforms = torch.rand(len(images), 3, dtype=torch.float64, generator=rank_generator(11))  # the same stream
    bank = transform.bank.images
    expected = images.clone()
    for i, (coin, pick, weight) in enumerate(uniforms.tolist()):
        if coin < 0.5:
            synthetic = bank[int(labels[i]), bank_position(pick, BANK["bank_size"])]
            expected[i] = synthetic if mode == "replace" else mix(images[i:i + 1], synthetic[None],
                                                                    [mix_weight(weight, RATIO)])[0]
    assert torch.equal(out, expected)
    assert 0 < int((uniforms[:, 0] < 0.5).sum()) < len(images)  # both branches were taken


def test_the_batch_path_generates_nothing(tiny_run):
    transform = GANAugment(tiny_run, mode="replace", p=1.0, seed=0, **BANK)
    transform.bank.fill()
    passes = []
    handle = transform.bank.gan.generator.register_forward_hook(lambda *args: passes.append(1))
    for _ in range(3):
        transform(*_batch())
    handle.remove()
    assert passes == []


def test_the_batch_path_is_deterministic_per_seed_and_rank(tiny_run, monkeypatch):
    def outputs(seed, rank):
        monkeypatch.setenv("RANK", str(rank))
        transform = GANAugment(tiny_run, mode="mix", p=0.5, seed=seed, **BANK)
        return [transform(*_batch(seed=i))[0] for i in range(3)]

    first = outputs(5, 0)
    assert all(torch.equal(a, b) for a, b in zip(first, outputs(5, 0), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(first, outputs(6, 0), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(first, outputs(5, 1), strict=True))  # ranks draw apart


def test_without_a_seed_the_batch_path_draws_from_torchs_global_rng(tiny_run):
    transform = GANAugment(tiny_run, mode="replace", p=0.5, **BANK)
    torch.manual_seed(3)
    first = transform(*_batch())[0]
    torch.manual_seed(3)
    assert torch.equal(transform(*_batch())[0], first)


def test_each_image_is_picked_with_probability_p(tiny_run):
    transform = GANAugment(tiny_run, mode="replace", p=0.3, seed=1, **BANK)
    images = torch.zeros(4000, 1, 28, 28, dtype=torch.uint8)  # bank images are never all zero
    out = transform(images, torch.arange(4000) % 10)[0]
    changed = (out != 0).flatten(1).any(dim=1).float().mean().item()
    assert abs(changed - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 4000)  # four standard errors


def test_the_batch_path_counts_its_draws_and_follows_refreshes(tiny_run):
    transform = GANAugment(tiny_run, mode="replace", p=1.0, seed=0, bank_size=2, refresh_every=16, refresh_size=20,
                           bank_seed=0, device="cpu")
    before = transform.bank.images.clone()
    images, labels = _batch(16)
    transform(images, labels)  # 16 draws: a refresh of all 20 images
    after = transform.bank.images.clone()  # the second call refreshes again, after its draw
    assert not torch.equal(before, after)
    out = transform(images, labels)[0]
    assert all(any(torch.equal(out[i], after[int(labels[i]), j]) for j in range(2)) for i in range(16))


def test_a_seeded_transform_pickles_and_its_copy_starts_the_stream_again(tiny_run):
    transform = GANAugment(tiny_run, mode="replace", p=0.5, seed=4, **BANK)
    first = transform(*_batch())[0]
    copy = pickle.loads(pickle.dumps(transform))
    assert torch.equal(copy(*_batch())[0], first)
    assert "seed=4" in repr(transform)


def test_seed_is_checked(tiny_run):
    with pytest.raises(ValueError, match="seed"):
        GANAugment(tiny_run, seed=-1, **BANK)


MEAN, STD = 0.286, 0.353  # Fashion-MNIST's


def _normalized(images, mean=MEAN, std=STD):
    return (images.float() / 255 - mean) / std


@pytest.mark.parametrize("mode", ["replace", "mix"])
def test_on_normalized_batches_it_equals_normalizing_after_the_uint8_path(tiny_run, mode):
    """As v2.MixUp after a chain that ends in Normalize: the same draws, and the normalized result of the uint8 path
    (replace exactly; mix to float32 rounding, since the blend is affine)."""
    images, labels = _batch()
    plain = GANAugment(tiny_run, mode=mode, p=0.5, mix_ratio=RATIO, seed=3, **BANK)
    normed = GANAugment(tiny_run, mode=mode, p=0.5, mix_ratio=RATIO, seed=3, normalize=(MEAN, STD), **BANK)
    expected = _normalized(plain(images.float() / 255, labels)[0] * 255)
    out, out_labels = normed(_normalized(images), labels)
    assert out_labels is labels and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert "normalize=((0.286,), (0.353,))" in repr(normed)


def test_normalized_bank_copies_follow_shape_refreshes_and_channels(tiny_run):
    """A 3-channel 32 px normalized batch gets the bank fitted (gray repeated, resized) and normalized per channel,
    and a refresh makes the copy again."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    transform = GANAugment(tiny_run, mode="replace", p=1.0, seed=0, bank_size=2, refresh_every=16, refresh_size=20,
                           bank_seed=0, device="cpu", normalize=(mean, std))
    labels = torch.arange(16) % 10
    images = torch.zeros(16, 3, 32, 32)
    transform(images, labels)  # 16 draws: the bank refreshes after them
    after = transform.bank.images.clone()
    out = transform(images, labels)[0]
    from ganaug._util.images import fit_images
    fitted = _normalized(fit_images(after.flatten(0, 1), 3, (32, 32)), torch.tensor(mean).view(1, 3, 1, 1),
                         torch.tensor(std).view(1, 3, 1, 1)).view(10, 2, 3, 32, 32)
    assert all(any(torch.allclose(out[i], fitted[int(labels[i]), j]) for j in range(2)) for i in range(16))


def test_per_sample_normalized_tensors_take_the_same_rule(tiny_run):
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    transform = GANAugment(tiny_run, mode="replace", p=1.0, normalize=(MEAN, STD), **BANK)
    out, label = transform(_normalized(image), 4)
    assert label == 4 and out.dtype == torch.float32
    assert any(torch.allclose(out, _normalized(transform.bank.images[4, j])) for j in range(BANK["bank_size"]))


def test_normalize_is_checked(tiny_run):
    with pytest.raises(ValueError, match=r"normalize should be None or \(mean, std\)"):
        GANAugment(tiny_run, normalize=(0.5,), **BANK)
    with pytest.raises(ValueError, match="std > 0"):
        GANAugment(tiny_run, normalize=(0.5, 0.0), **BANK)
    with pytest.raises(ValueError, match="normalize"):
        GANAugment(tiny_run, normalize=((0.5, 0.5), (0.2,)), **BANK)
    with pytest.raises(ValueError, match="normalize is for mode 'replace' or 'mix'"):
        GANAugment(tiny_run, mode="variant", normalize=(MEAN, STD), **BANK)
    transform = GANAugment(tiny_run, p=1.0, seed=0, normalize=(MEAN, STD), **BANK)
    with pytest.raises(ValueError, match="normalized by mean"):
        transform(*_batch())  # uint8: not what a chain ending in Normalize gives
    with pytest.raises(ValueError, match="NaN or infinite"):
        transform(torch.full((4, 1, 28, 28), float("nan")), torch.arange(4))
    one_bad = torch.zeros(4, 1, 28, 28)
    one_bad[2, 0, 5, 7] = float("-inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        transform(one_bad, torch.arange(4))
    huge = torch.full((4, 1, 28, 28), 3e38)  # finite values whose sum overflows are not NaN: they pass the check
    assert transform(huge, torch.arange(4))[0].shape == huge.shape
    with pytest.raises(ValueError, match=r"label should lie in \[0, 10\)"):
        transform(torch.zeros(4, 1, 28, 28), torch.tensor([0, 1, 10, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        transform(torch.zeros(4, 1, 28, 28), torch.zeros(4))
    with pytest.raises(ValueError, match="3 mean and std values; images have 1 channels"):
        GANAugment(tiny_run, p=1.0, seed=0, normalize=((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)), **BANK)(
            torch.zeros(4, 1, 28, 28), torch.arange(4))


def test_without_normalize_a_normalized_batch_is_refused_with_the_way_out(tiny_run):
    with pytest.raises(ValueError, match=r"normalize=\(mean, std\)"):
        GANAugment(tiny_run, p=1.0, seed=0, **BANK)(_normalized(_batch()[0]), torch.arange(64) % 10)


@pytest.mark.parametrize("labels", [torch.tensor([3, 0, 9]), torch.tensor([3, 0, 9], dtype=torch.int32),
                                    torch.tensor([3, 0, 9], dtype=torch.uint8), [3, 0, 9], np.array([3, 0, 9]),
                                    torch.tensor([[3], [0], [9]])])
def test_label_tensor_takes_what_as_labels_takes(labels):
    from ganaug._util.validate import as_labels, label_tensor

    found = label_tensor(labels, 10, 3)
    assert found.dtype == torch.int64 and found.tolist() == as_labels(labels, 10, 3) == [3, 0, 9]
    with pytest.raises(ValueError, match=r"lie in \[0, 5\) for this model, got values in \[0, 9\]"):
        label_tensor(labels, 5, 3)
    with pytest.raises(ValueError, match="one label per item"):
        label_tensor(labels, 10, 4)

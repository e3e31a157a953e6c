from __future__ import annotations

import pytest
import torch

from ganaug.eval.metrics import frechet_distance
from ganaug.nets.diffaugment import diff_augment
from ganaug.nets.discriminator import ProjectedDiscriminator
from ganaug.nets.generator import Generator, initial_size
from ganaug.train.checkpoint import flatten_optimizer, unflatten_optimizer


@pytest.mark.parametrize("resolution", [28, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_resolutions_and_channels(resolution, channels):
    generator = Generator(4, resolution, channels, z_dim=8, embed_dim=8, instance_dim=6, base_channels=32,
                          min_channels=8)
    images = generator(torch.randn(2, 8), torch.tensor([0, 3]), torch.randn(2, 6))
    assert images.shape == (2, channels, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert resolution // initial_size(resolution) in (4, 8, 16, 32, 64)


def test_generator_conditioning_is_checked_and_used():
    torch.manual_seed(0)
    generator = Generator(3, 28, 1, z_dim=8, embed_dim=8, instance_dim=0, base_channels=32, min_channels=8)
    for module in generator.modules():  # make the conditional norms non-trivial
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.5)
    z = torch.randn(1, 8).repeat(2, 1)
    images = generator(z, torch.tensor([0, 1]))
    assert not torch.allclose(images[0], images[1]), "the class label changes the image"
    with pytest.raises(ValueError, match="class-only"):
        generator(z, torch.tensor([0, 1]), torch.randn(2, 4))
    with pytest.raises(ValueError, match="resolution should be one of"):
        Generator(3, 48, 1)


def test_generator_output_does_not_depend_on_the_batch():
    generator = Generator(3, 32, 3, z_dim=8, embed_dim=8, instance_dim=4, base_channels=32, min_channels=8).eval()
    z, labels, instance = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1]), torch.randn(5, 4)
    together = generator(z, labels, instance)
    alone = generator(z[2:3], labels[2:3], instance[2:3])
    torch.testing.assert_close(together[2:3], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pixel_head", [True, False])
def test_projected_discriminator(pixel_head, random_extractor):
    discriminator = ProjectedDiscriminator(random_extractor, num_classes=4, image_channels=1, resolution=28,
                                           instance_dim=random_extractor.embed_dim, pixel_head=pixel_head)
    images = torch.rand(3, 1, 28, 28, requires_grad=True) * 2 - 1
    logits = discriminator(images, torch.tensor([0, 1, 3]), torch.randn(3, random_extractor.embed_dim))
    assert len(logits) == len(random_extractor.channels) + int(pixel_head)
    assert all(logit.shape[0] == 3 for logit in logits)
    sum(logit.mean() for logit in logits).backward()
    trainable = [p for p in discriminator.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert all(p.grad is None for p in discriminator.extractor.parameters()), "the backbone gets no gradient"
    assert not any(name.startswith("ccm") or name.startswith("csm") for name, _ in discriminator.named_parameters())


def test_diff_augment_is_differentiable_and_checked():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16, requires_grad=True)
    out = diff_augment(images * 2 - 1, "color,translation,cutout")
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None
    assert torch.equal(diff_augment(images, ""), images)
    with pytest.raises(ValueError, match="diffaugment policy"):
        diff_augment(images, "rotation")


def test_cutout_zeroes_a_quarter_and_translation_keeps_content():
    torch.manual_seed(0)
    ones = torch.ones(8, 1, 16, 16)
    cut = diff_augment(ones, "cutout")
    zeroed = (cut == 0).float().mean(dim=(1, 2, 3))  # a half-side square, clipped where it crosses the border
    assert ((zeroed > 0) & (zeroed <= 0.25)).all() and (zeroed == 0.25).any()
    shifted = diff_augment(ones, "translation")
    assert (shifted.sum(dim=(1, 2, 3)) >= 0.75 * 256).all()


def test_frechet_distance():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 8, generator=generator)
    b = torch.randn(2000, 8, generator=generator)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same_distribution = frechet_distance(a, b)
    assert same_distribution < 0.1
    assert frechet_distance(a, b + 1.0) == pytest.approx(8.0 + same_distribution, rel=0.05)
    assert frechet_distance(a, b * 2) > frechet_distance(a, b * 1.5) > same_distribution


def test_optimizer_state_round_trips_without_pickle():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors, info = flatten_optimizer(optimizer, "opt")
    copy = torch.optim.Adam(model.parameters(), lr=5.0)
    unflatten_optimizer(copy, "opt", tensors, info)
    assert copy.param_groups[0]["lr"] == 1e-3
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(copy.state_dict()["state"][0][key], optimizer.state_dict()["state"][0][key])


def test_minibatch_std_sees_variety_and_keeps_halves_apart():
    from ganaug.nets.layers import MinibatchStd

    layer = MinibatchStd(group_size=4)
    same = torch.ones(8, 2, 3, 3)
    varied = torch.randn(8, 2, 3, 3)
    assert torch.all(layer(same)[:, -1] == 0)
    assert torch.all(layer(varied)[:, -1] > 0)
    # Reals (first half, identical) and fakes (second half, varied) in one batch: groups never mix them.
    both = layer(torch.cat([same, varied]))
    assert torch.all(both[:8, -1] == 0) and torch.all(both[8:, -1] > 0)


def test_batch_norm_generator_normalizes_over_the_batch_in_training_and_samples_from_running_stats():
    torch.manual_seed(0)
    generator = Generator(3, 28, 1, z_dim=8, embed_dim=8, base_channels=32, min_channels=8, norm="batch")
    assert any(name.endswith("running_mean") for name, _ in generator.named_buffers())
    z, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    generator.train()
    together = generator(z, labels)
    alone = generator(z[:2], labels[:2])
    assert not torch.allclose(together[:2], alone, atol=1e-4), "in training, each image depends on its batch"
    generator.eval()
    torch.testing.assert_close(generator(z, labels)[:2], generator(z[:2], labels[:2]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="norm should be one of"):
        Generator(3, 28, 1, norm="layer")


def test_ema_update_copies_buffers_and_averages_parameters():
    from ganaug.train.steps import update_ema

    live = Generator(3, 28, 1, z_dim=8, embed_dim=8, base_channels=16, min_channels=8, norm="batch")
    ema = Generator(3, 28, 1, z_dim=8, embed_dim=8, base_channels=16, min_channels=8, norm="batch")
    live.train()(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))  # moves the running statistics
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, live, step=1000, decay=0.5, warmup=1)
    for average, current in zip(ema.buffers(), live.buffers(), strict=True):
        assert torch.equal(average, current)
    for old, average, current in zip(before, ema.parameters(), live.parameters(), strict=True):
        torch.testing.assert_close(average, (old + current) / 2)


def test_z_to_blocks_feeds_the_noise_to_every_norm():
    """With z cut out of the first layer and the mapping, only z_to_blocks lets z change the image."""
    torch.manual_seed(0)
    z, labels = torch.randn(2, 8), torch.tensor([0, 0])
    outputs = {}
    for fed in (False, True):
        generator = Generator(3, 28, 1, z_dim=8, embed_dim=8, base_channels=16, min_channels=8, z_to_blocks=fed)
        with torch.no_grad():
            for module in generator.modules():  # make the conditional norms non-trivial
                if isinstance(module, torch.nn.Linear) and module.out_features in (16, 8):
                    torch.nn.init.normal_(module.weight, std=0.5)
            generator.start.weight[:, :8] = 0
            generator.mapping[0].weight[:, :8] = 0
        outputs[fed] = generator(z, labels)
    torch.testing.assert_close(outputs[False][0], outputs[False][1])
    assert not torch.allclose(outputs[True][0], outputs[True][1], atol=1e-3)


@pytest.mark.parametrize("feature_minibatch_std", [True, False])
def test_feature_heads_see_the_variety_of_a_batch_only_with_feature_minibatch_std(feature_minibatch_std,
                                                                                   random_extractor):
    torch.manual_seed(0)
    discriminator = ProjectedDiscriminator(random_extractor, num_classes=2, image_channels=1, resolution=28,
                                           pixel_head=False, feature_minibatch_std=feature_minibatch_std).eval()
    images = torch.rand(4, 1, 28, 28) * 2 - 1  # eval: spectral norm's power iteration leaves the weights alone
    labels = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        varied = discriminator(images, labels)
        repeated = discriminator(images[:1].expand(4, -1, -1, -1), labels)
    # The first image's score, in a group of four different images or of four copies of itself.
    changed = [not torch.allclose(a[0], b[0], rtol=1e-4, atol=1e-4) for a, b in zip(varied, repeated, strict=True)]
    assert all(changed) if feature_minibatch_std else not any(changed)


def test_train_config_builds_the_discriminator_it_names():
    from ganaug import TrainConfig

    spec = TrainConfig(steps=1).discriminator_spec(10, 28, 1, 0)
    assert spec.feature_minibatch_std is True
    assert TrainConfig(steps=1, feature_minibatch_std=False).discriminator_spec(10, 28, 1, 0).feature_minibatch_std \
        is False


def test_an_instance_optional_generator_takes_none_as_the_zero_instance():
    generator = Generator(3, 28, 1, z_dim=8, embed_dim=8, instance_dim=4, base_channels=32, min_channels=8,
                          instance_optional=True).eval()
    z, labels = torch.randn(3, 8), torch.tensor([0, 1, 2])
    torch.testing.assert_close(generator(z, labels), generator(z, labels, torch.zeros(3, 4)))
    assert not torch.allclose(generator(z, labels), generator(z, labels, torch.randn(3, 4)))
    with pytest.raises(ValueError, match="instance features are required"):
        Generator(3, 28, 1, z_dim=8, embed_dim=8, instance_dim=4, base_channels=32, min_channels=8)(z, labels)
    assert not Generator(3, 28, 1, instance_dim=0, instance_optional=True).instance_optional  # nothing to drop

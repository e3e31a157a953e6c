"""SyntheticDataset and ExpandedDataset: lengths, labels, determinism, balancing, formats, workers."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from ganaug import ExpandedDataset, GANAug, SyntheticDataset
from ganaug.adapters.datasets import item_seed, synthetic_class_counts


def test_synthetic_dataset_lengths_labels_and_fixed_items(tiny_run):
    dataset = SyntheticDataset(tiny_run, class_counts=[2, 0, 3, 1, 1, 1, 1, 1, 1, 4], seed=9)
    assert len(dataset) == 15
    assert [dataset[i][1] for i in range(len(dataset))] == [0, 0, 2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9]
    image, label = dataset[4]
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8 and label == 2
    fresh = SyntheticDataset(tiny_run, class_counts=[2, 0, 3, 1, 1, 1, 1, 1, 1, 4], seed=9, cache=False)
    backwards = [fresh[i][0] for i in reversed(range(len(fresh)))][::-1]
    materialized = SyntheticDataset(tiny_run, class_counts=[2, 0, 3, 1, 1, 1, 1, 1, 1, 4], seed=9).materialize(4)
    for i in range(len(dataset)):
        assert torch.equal(dataset[i][0], backwards[i]) and torch.equal(dataset[i][0], materialized[i][0])
    gan = GANAug.from_pretrained(tiny_run, device="cpu")
    assert torch.equal(image, gan.sample_seeded([2], [item_seed(9, 4)])[0])
    other_seed = SyntheticDataset(tiny_run, class_counts=[2, 0, 3, 1, 1, 1, 1, 1, 1, 4], seed=10)
    assert not torch.equal(image, other_seed[4][0])
    assert not torch.equal(dataset[2][0], dataset[3][0])
    assert torch.equal(dataset[-1][0], dataset[14][0])
    with pytest.raises(IndexError):
        dataset[15]


def test_synthetic_dataset_options_and_errors(tiny_run):
    dataset = SyntheticDataset(tiny_run, num_per_class=2, image_size=(40, 36), transform=lambda x: x.float() / 255)
    image, _ = dataset[0]
    assert len(dataset) == 20 and image.shape == (1, 40, 36) and image.dtype == torch.float32
    assert dataset.classes[0] == "T-shirt/top"
    with pytest.raises(ValueError, match="exactly one of num_per_class and class_counts"):
        SyntheticDataset(tiny_run)
    with pytest.raises(ValueError, match="exactly one of"):
        SyntheticDataset(tiny_run, num_per_class=1, class_counts=[1] * 10)
    with pytest.raises(ValueError, match="class_counts should hold 10"):
        SyntheticDataset(tiny_run, class_counts=[1, 2])
    with pytest.raises(ValueError, match="num_per_class should be an int >= 0"):
        SyntheticDataset(tiny_run, num_per_class=-1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SyntheticDataset(tiny_run / "nope", num_per_class=1)


def test_synthetic_class_counts():
    assert synthetic_class_counts([100, 50, 10], 0.5, None) == [50, 25, 5]
    assert synthetic_class_counts([100, 50, 10], 0.5, "equalize") == [0, 20, 60]
    assert synthetic_class_counts([100, 50, 10], None, "equalize") == [0, 50, 90]
    assert synthetic_class_counts([10, 10, 10], 1.0, "equalize") == [10, 10, 10]
    assert synthetic_class_counts([3, 3], 0.0, None) == [0, 0]
    assert synthetic_class_counts([4, 0, 2], None, "equalize") == [0, 0, 2]  # an absent class stays absent
    assert synthetic_class_counts([0, 0], 1.0, "equalize") == [0, 0]
    with pytest.raises(ValueError, match="balance should be one of"):
        synthetic_class_counts([1], 0.5, "oversample")
    with pytest.raises(ValueError, match="synthetic_ratio=None needs balance='equalize'"):
        synthetic_class_counts([1], None, None)
    with pytest.raises(ValueError, match="synthetic_ratio should be a number >= 0"):
        synthetic_class_counts([1], -0.1, None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=12), st.floats(0, 3))
def test_class_counts_properties(counts, ratio):
    total = round(ratio * sum(counts))
    for balance in (None, "equalize"):
        extra = synthetic_class_counts(counts, ratio, balance)
        assert sum(extra) == (total if any(counts) else 0) and min(extra) >= 0
        assert all(e == 0 for c, e in zip(counts, extra, strict=True) if c == 0)
    equalized = [c + e for c, e in zip(counts, synthetic_class_counts(counts, ratio, "equalize"), strict=True)]
    lowest = min((final for count, final in zip(counts, equalized, strict=True) if count), default=0)
    for count, final in zip(counts, equalized, strict=True):
        if final > count:  # a class only receives items while it is among the lowest
            assert final <= lowest + 1


class PilDataset(Dataset):
    """A torchvision-style dataset: PIL images, a ``targets`` list, no transform."""

    def __init__(self, labels, mode="L", size=(30, 26)):
        self.targets = list(labels)
        self.mode, self.size = mode, size

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        bands = len(PIL.Image.new(self.mode, (1, 1)).getbands())
        color = index % 255 if bands == 1 else (1, 2, 3, 255)[:bands]
        return PIL.Image.new(self.mode, self.size, color=color), self.targets[index]


class ArrayDataset(Dataset):
    """numpy HWC images and no labels attribute: ExpandedDataset has to read the labels itself."""

    def __init__(self, labels, dtype=np.float32):
        self._labels, self.dtype = list(labels), dtype

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index):
        return np.zeros((20, 20, 3), self.dtype), self._labels[index]


def test_expanded_dataset_balances_and_marks_synthetic_items(tiny_run):
    labels = [0] * 20 + [1] * 5 + [2] * 10
    base = PilDataset(labels)
    expanded = ExpandedDataset(base, tiny_run, synthetic_ratio=None, balance="equalize", seed=1,
                               return_is_synthetic=True)
    counts = expanded.class_counts()
    assert counts["total"][:3] == [20, 20, 20] and counts["synthetic"][:3] == [0, 15, 10]
    assert counts["total"][3:] == [0] * 7
    assert len(expanded) == 35 + 25 == expanded.num_real + expanded.num_synthetic
    assert expanded.synthetic_mask.sum() == 25 and not expanded.is_synthetic(34) and expanded.is_synthetic(35)
    image, label, synthetic = expanded[35]
    assert isinstance(image, PIL.Image.Image) and image.mode == "L" and image.size == (30, 26)
    assert label == 1 and synthetic
    real_image, real_label, real_flag = expanded[3]
    assert real_label == 0 and not real_flag and np.array_equal(np.asarray(real_image), np.asarray(base[3][0]))
    assert [expanded[i][1] for i in range(len(expanded))] == expanded.targets.tolist()
    again = ExpandedDataset(base, tiny_run, synthetic_ratio=None, balance="equalize", seed=1)
    assert np.array_equal(np.asarray(again[50][0]), np.asarray(expanded[50][0]))

    proportional = ExpandedDataset(base, tiny_run, synthetic_ratio=0.2)
    assert proportional.class_counts()["synthetic"][:3] == [4, 1, 2] and len(proportional) == 42


def test_expanded_dataset_matches_the_real_image_format(tiny_run):
    rgb = ExpandedDataset(PilDataset([0, 1], mode="RGB"), tiny_run, synthetic_ratio=1.0)
    assert rgb[3][0].mode == "RGB" and rgb[3][0].size == (30, 26)
    arrays = ExpandedDataset(ArrayDataset([0, 1, 1]), tiny_run, synthetic_ratio=1.0, transform=lambda x: x * 2)
    image = arrays[4][0]
    assert image.shape == (20, 20, 3) and image.dtype == np.float32 and image.min() >= 0 and image.max() <= 2
    tensors = ExpandedDataset(torch.utils.data.TensorDataset(torch.zeros(4, 1, 12, 12), torch.tensor([0, 0, 1, 2])),
                              tiny_run, synthetic_ratio=0.5)
    assert tensors[5][0].shape == (1, 12, 12) and tensors[5][0].dtype == torch.float32 and len(tensors) == 6


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "1", "I;16", "I", "F"])
def test_expanded_dataset_keeps_every_pil_mode(tiny_run, mode):
    """Real and synthetic items must collate together: the same mode, so the same channels after ToTensor."""
    dataset = ExpandedDataset(PilDataset([0, 1], mode=mode), tiny_run, synthetic_ratio=1.0)
    real, synthetic = dataset[0][0], dataset[3][0]
    assert synthetic.mode == real.mode and synthetic.size == real.size
    if mode in ("I;16", "I"):  # 16-bit range, not 0..255
        assert np.asarray(synthetic).max() > 255 or np.asarray(synthetic).max() == 0


def test_expanded_dataset_scales_16_bit_arrays(tiny_run):
    class Uint16Dataset(torch.utils.data.Dataset):
        targets = [0, 1]

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return np.full((20, 20), 60000, np.uint16), self.targets[index]

    synthetic = ExpandedDataset(Uint16Dataset(), tiny_run, synthetic_ratio=1.0)[3][0]
    assert synthetic.dtype == np.uint16 and synthetic.shape == (20, 20)
    assert synthetic.max() > 255 or synthetic.max() == 0


def test_expanded_dataset_errors(tiny_run):
    with pytest.raises(ValueError, match=r"base labels should lie in \[0, 10\)"):
        ExpandedDataset(PilDataset([0, 12]), tiny_run)
    with pytest.raises(ValueError, match="labels should hold one label per base item"):
        ExpandedDataset(PilDataset([0, 1]), tiny_run, labels=[0])
    with pytest.raises(ValueError, match="non-empty"):
        ExpandedDataset(PilDataset([]), tiny_run)
    with pytest.raises(ValueError, match="balance should be one of"):
        ExpandedDataset(PilDataset([0]), tiny_run, balance="up")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_expanded_dataset_in_dataloader_workers(tiny_run, context):
    expanded = ExpandedDataset(torch.utils.data.TensorDataset(torch.zeros(6, 1, 28, 28, dtype=torch.uint8),
                                                              torch.tensor([0, 0, 0, 0, 1, 2])),
                               tiny_run, synthetic_ratio=None, balance="equalize", return_is_synthetic=True)
    loader = DataLoader(expanded, batch_size=4, num_workers=2, multiprocessing_context=context)
    images, labels, synthetic = (torch.cat(parts) for parts in zip(*loader, strict=True))
    assert images.shape == (12, 1, 28, 28) and labels.tolist() == expanded.targets.tolist()
    assert synthetic.tolist() == expanded.synthetic_mask.tolist()
    assert torch.equal(images[6:], torch.stack([expanded[i][0] for i in range(6, 12)]))


def test_synthetic_dataset_argument_forms_and_exports_without_config_json(tiny_run, tmp_path):
    export = GANAug.from_pretrained(tiny_run, device="cpu").save_pretrained(tmp_path / "export")
    (export / "config.json").unlink()  # a copy for people; the weights file carries the same
    dataset = SyntheticDataset(export, num_per_class=1, seed=np.int64(3), image_size=16)
    assert len(dataset) == 10 and dataset[0][0].shape[-2:] == (16, 16)
    with pytest.raises(ValueError, match="class_counts should hold 10 non-negative int counts"):
        SyntheticDataset(export, class_counts=[1.9] * 10)
    expanded = ExpandedDataset(PilDataset([0, 1]), tiny_run, synthetic_ratio=1.0)
    assert expanded.is_synthetic(3) and not expanded.is_synthetic(-4)
    with pytest.raises(IndexError, match="out of range"):
        expanded.is_synthetic(10**6)

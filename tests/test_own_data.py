"""A newcomer's own data: folders keep their size and channels, RGBA icons of mixed sizes, any PyTorch dataset."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import ganaug
from ganaug.data.folder import data_format
from ganaug.train.batches import nearest_resolution

ICON_CLASSES = {"circle": 24, "square": 12, "triangle": 5}  # imbalanced, as real folders are
ICON_SIDES = (16, 22, 32, 48, 64, 128, 256)


def _icon(kind: str, side: int, colour: tuple[int, int, int], rng: np.random.Generator) -> PIL.Image.Image:
    """A coloured shape on a transparent background, as icon sets are drawn."""
    from PIL import ImageDraw

    image = PIL.Image.new("RGBA", (side, side), (0, 0, 0, 0))  # transparent black: white once composited
    draw = ImageDraw.Draw(image)
    margin = int(side * rng.uniform(0.1, 0.25))
    box = (margin, margin, side - margin, side - margin)
    fill = (*colour, 255)
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(side // 2, margin), (side - margin, side - margin), (margin, side - margin)], fill=fill)
    return image


@pytest.fixture(scope="module")
def icon_folder(tmp_path_factory):
    """RGBA PNG icons of 16-256 px in 3 imbalanced classes, generated here (no licence to track)."""
    root = tmp_path_factory.mktemp("icons")
    rng = np.random.default_rng(0)
    for kind, count in ICON_CLASSES.items():
        (root / kind).mkdir()
        for i in range(count):
            colour = tuple(int(c) for c in rng.integers(0, 200, 3))
            _icon(kind, int(rng.choice(ICON_SIDES)), colour, rng).save(root / kind / f"{i:03d}.png")
    return root


def test_a_folder_keeps_its_own_size_and_channels(tmp_path):
    root = tmp_path / "gray"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            PIL.Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(root / label / f"{i}.png")
    data = ganaug.load_dataset(root)
    assert (data.image_size, data.channels) == ((28, 28), 1)  # was 64x64 RGB
    assert ganaug.load_dataset(root, image_size=32, channels=3).images.shape == (6, 3, 32, 32)  # overrides


def test_rgba_icons_of_mixed_sizes_are_composited_over_white_at_their_median_side(icon_folder):
    data = ganaug.ImageDataset.from_folder(icon_folder)
    sides = sorted(side for f in icon_folder.rglob("*.png") for side in [PIL.Image.open(f).size[0]])
    assert data.channels == 3 and data.image_size == (int(np.median(sides)),) * 2
    assert data.class_counts() == [ICON_CLASSES[k] for k in sorted(ICON_CLASSES)]
    corners = data.images[:, :, 0, 0]
    assert (corners == 255).all(), "transparent pixels become white, not black"
    centres = data.images[:, :, data.image_size[0] // 2, data.image_size[1] // 2].float()
    assert (centres < 230).any(dim=1).all(), "the shapes keep their colour"


def test_the_data_format_rule():
    assert data_format([(28, 28)] * 3, ["L"] * 3) == ((28, 28), 1)
    assert data_format([(24, 40)] * 2, ["L", "RGB"]) == ((24, 40), 3)
    assert data_format([(16, 16), (48, 48), (256, 256)], ["RGBA", "P", "LA"]) == ((48, 48), 3)
    assert data_format([(10, 40), (20, 20)], ["I;16", "1"])[1] == 1
    assert [nearest_resolution(s, s) for s in (16, 28, 29, 30, 40, 48, 100, 500)] == [28, 28, 28, 32, 32, 64, 128, 256]


class _Items(Dataset):
    """A plain map-style dataset of (image, label), images in the given form."""

    def __init__(self, form: str, num: int = 20):
        self.form, self.num = form, num
        self.classes = ["even", "odd"]

    def __len__(self):
        return self.num

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        side = 20 + index % 3 * 4
        array = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        image = {"pil": lambda: PIL.Image.fromarray(array),
                 "pil_rgba": lambda: PIL.Image.fromarray(np.dstack([array, np.full(array.shape[:2], 255, np.uint8)])),
                 "numpy": lambda: array,
                 "float_tensor": lambda: torch.from_numpy(array).permute(2, 0, 1).float() / 255}[self.form]()
        return image, np.int64(index % 2), {"id": index}  # extra fields are ignored


@pytest.mark.parametrize("form", ["pil", "pil_rgba", "numpy", "float_tensor"])
def test_any_map_style_dataset_is_read_once(form):
    data = ganaug.ImageDataset.from_dataset(_Items(form), progress=False)
    assert len(data) == 20 and data.channels == 3 and data.classes == ("even", "odd")
    assert data.image_size == (24, 24)  # mixed sides 20, 24, 28: a square of the median side
    assert data.labels.tolist() == [i % 2 for i in range(20)]
    assert data.source.kind == "dataset"


def test_bad_dataset_items_name_the_item():
    with pytest.raises(TypeError, match="item 0 of TensorDataset is a tuple of 1"):
        ganaug.ImageDataset.from_dataset(TensorDataset(torch.zeros(3, 1, 8, 8)), progress=False)
    with pytest.raises(TypeError, match="the label of item 0"):
        ganaug.ImageDataset.from_dataset([(torch.zeros(1, 8, 8), 0.5)], progress=False)
    with pytest.raises(ValueError, match="the image of item 1 .*values in"):
        ganaug.ImageDataset.from_dataset([(torch.zeros(1, 8, 8), 0), (torch.full((1, 8, 8), 3.0), 1)],
                                         progress=False)
    with pytest.raises(TypeError, match="map-style dataset"):
        ganaug.ImageDataset.from_dataset(iter([]), progress=False)


def test_train_takes_a_plain_tensor_dataset(embedded_train, extractor_file, tmp_path, capsys):
    from test_training import tiny_config

    subset = embedded_train.subset(torch.arange(0, 2000, 10))
    plain = TensorDataset(subset.images, subset.labels)  # what users have: no ganaug type
    gan = ganaug.train(plain, tiny_config(steps=2, backbone_weights=str(extractor_file)), tmp_path / "run")
    assert gan.num_classes == 10 and gan.resolution == 28 and gan.channels == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "reading TensorDataset" in said and "200/200" in said  # the conversion's progress bar
    assert "training on 200 images in 10 classes at 28x28" in said and "1 channel (the data's)" in said


def test_train_on_icons_keeps_their_colour(icon_folder, tmp_path):
    from test_training import tiny_config

    data = ganaug.ImageDataset.from_folder(icon_folder)
    config = tiny_config(steps=2, batch_size=8, backbone_weights="random", instance_neighbours=2, bank_per_class=3)
    gan = ganaug.train(data, config, tmp_path / "run", progress=False)
    assert gan.channels == 3 and gan.resolution == nearest_resolution(*data.image_size)
    assert gan.info["data"]["class_counts"] == [ICON_CLASSES[k] for k in sorted(ICON_CLASSES)]
    assert gan.sample(6, labels=[0, 1, 2, 0, 1, 2], seed=0).shape == (6, 3, gan.resolution, gan.resolution)

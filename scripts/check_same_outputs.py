"""Same seed, same bytes: hash what ganaug makes, to compare two versions of the code.

Trains a tiny run on the embedded Fashion-MNIST subset and hashes, with fixed seeds: the
pretrained extractor, the training checkpoints (uninterrupted and resumed), the losses logged,
samples (``sample``, ``sample_seeded``, ``sample_like``), an export, completions, the outputs of
every transform of both adapters, the sample bank, the datasets, an ``expand`` shard, evaluation
metrics, and FeatureGAN's samples and weights.

Only the public API is used, so the same script runs on older and newer layouts of the package.
Safetensors files are hashed by their tensors (name, dtype, shape, bytes), not their bytes: the
JSON header holds timings and paths that differ from run to run.

    python scripts/check_same_outputs.py --out new.json
    PYTHONPATH=/path/to/old/checkout python scripts/check_same_outputs.py --out old.json
    python scripts/check_same_outputs.py --compare old.json new.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np


def digest(*parts) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        if hasattr(part, "numpy"):
            part = part.detach().cpu().contiguous().numpy()
        if isinstance(part, np.ndarray):
            hasher.update(f"{part.dtype}{part.shape}".encode())
            part = np.ascontiguousarray(part).tobytes()
        elif not isinstance(part, bytes):
            part = json.dumps(part, sort_keys=True, default=str).encode()
        hasher.update(part)
    return hasher.hexdigest()[:16]


def tensor_file_digest(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        names = sorted(handle.keys())  # noqa: SIM118
        return digest(*[part for name in names for part in (name.encode(), handle.get_tensor(name))])


def image_digest(image) -> str:
    import PIL.Image

    return digest(np.asarray(image), image.mode) if isinstance(image, PIL.Image.Image) else digest(image)


def losses(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in ("images_per_s", "elapsed_s")} for row in rows]


def collect(work: Path) -> dict[str, str]:
    import albumentations as A
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    import ganaug
    from ganaug import albumentations as gan_albumentations
    from ganaug import transforms as gan_transforms
    from ganaug.cli import main as cli_main

    out: dict[str, str] = {}
    data = ganaug.load_fashion_mnist("train", source="embedded")
    small = data.subset(torch.arange(0, 2000, 10))
    test = ganaug.load_fashion_mnist("test", source="embedded")

    # --- the extractor, and training (uninterrupted, resumed, class-only) ----------------------
    extractor = work / "extractor.safetensors"
    ganaug.pretrain_extractor(small, extractor, model_name="resnet10t", epochs=1, input_size=32, progress=False)
    out["pretrain: extractor tensors"] = tensor_file_digest(extractor)
    tiny = dict(batch_size=8, g_channels=32, g_min_channels=16, mixing_channels=16, d_channels=16, z_dim=16,
                embed_dim=16, instance_neighbours=3, bank_per_class=5, checkpoint_every=3, sample_every=3,
                log_every=1, seed=0, backbone_weights=str(extractor))
    run = work / "run"
    ganaug.train(small, ganaug.TrainConfig(steps=6, **tiny), run, progress=False)
    out["train: checkpoint tensors"] = tensor_file_digest(run / "checkpoint.safetensors")
    out["train: instance features"] = tensor_file_digest(run / "instance_features.safetensors")
    out["train: losses"] = digest(losses(run))
    out["train: sample grid"] = digest((run / "samples" / "step_0000006.png").read_bytes())
    resumed = work / "resumed"
    ganaug.train(small, ganaug.TrainConfig(steps=3, **tiny), resumed, progress=False)
    ganaug.train(small, ganaug.TrainConfig(steps=6, **tiny), resumed, resume=True, progress=False)
    out["train: resumed checkpoint tensors"] = tensor_file_digest(resumed / "checkpoint.safetensors")
    out["train: resumed losses"] = digest(losses(resumed))
    class_only = work / "class_only"
    ganaug.train(small, ganaug.TrainConfig(steps=3, instance_conditioning=False, **tiny), class_only, progress=False)
    out["train: class-only checkpoint tensors"] = tensor_file_digest(class_only / "checkpoint.safetensors")

    # --- sampling, export, completion --------------------------------------------------------
    gan = ganaug.GANAug.from_pretrained(run, device="cpu")
    out["sample"] = digest(gan.sample(30, seed=3))
    out["sample: truncated, one class"] = digest(gan.sample(7, labels=4, seed=1, truncation=0.5))
    out["sample_seeded"] = digest(gan.sample_seeded([3, 1, 4, 1, 5, 9], [10, 11, 12, 13, 14, 15]))
    out["sample_like"] = digest(gan.sample_like(test.images[:6], num_per_image=2, seed=2))
    out["sample_like: given labels"] = digest(gan.sample_like(test.images[:6], seed=2, labels=[0, 1, 2, 3, 4, 5]))
    out["embed"] = digest(gan.embed(test.images[:10]))
    out["infer_labels"] = digest(gan.infer_labels(gan.embed(test.images[:10])))
    export = work / "export"
    gan.save_pretrained(export)
    out["export: tensors"] = tensor_file_digest(export / "model.safetensors")
    out["export: sample"] = digest(ganaug.GANAug.from_pretrained(export, device="cpu").sample(10, seed=3))
    class_only_gan = ganaug.GANAug.from_pretrained(class_only, device="cpu")
    out["class-only: sample"] = digest(class_only_gan.sample(10, seed=3))
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[8:20, 6:18] = True
    out["complete: inferred labels"] = digest(gan.complete(test.images[:4], mask, steps=4, seed=0))
    out["complete: given labels"] = digest(gan.complete(test.images[:4], mask, labels=[1, 2, 3, 4], steps=4, seed=0))
    numpy_images = test.images[:3].permute(0, 2, 3, 1).numpy()
    out["complete: numpy"] = digest(gan.complete(numpy_images, mask.numpy(), steps=2, seed=1))

    # --- transforms --------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    gray = test.images[0, 0].numpy()
    gray_float = gray.astype(np.float32) / 255
    colour = rng.random((33, 47, 3), dtype=np.float32)
    bank = dict(bank_size=4, refresh_every=3, refresh_size=8, bank_seed=1, device="cpu")
    for mode in ("replace", "mix", "variant"):
        augment = gan_albumentations.GANAugment(run, mode=mode, p=1.0, **bank)
        compose = A.Compose([augment], seed=5)
        results = [compose(image=gray, class_label=3)["image"] for _ in range(4)]  # refreshes after 3 draws
        out[f"albumentations {mode}: uint8 HW"] = digest(*results)
        out[f"albumentations {mode}: float HW"] = digest(compose(image=gray_float, class_label=3)["image"])
        out[f"albumentations {mode}: float HWC resized"] = digest(compose(image=colour, class_label=2)["image"])
        out[f"albumentations {mode}: images target"] = digest(
            compose(images=np.stack([gray, gray, gray]), class_label=1)["images"])
    fill = A.Compose([gan_albumentations.GANCutoutFill(run, p=1.0, device="cpu")], seed=2)
    out["albumentations GANCutoutFill"] = digest(fill(image=gray, class_label=5)["image"], fill(image=colour)["image"])
    for mode in ("replace", "mix", "variant"):
        augment = gan_transforms.GANAugment(run, mode=mode, p=0.7, **bank)
        torch.manual_seed(9)
        tensor = torch.from_numpy(gray)[None]
        results = [augment(tensor, 3)[0] for _ in range(6)]
        out[f"torchvision {mode}: uint8 CHW"] = digest(*results)
        out[f"torchvision {mode}: PIL"] = image_digest(augment(v2.functional.to_pil_image(tensor), 2)[0])
        float_image = tv_tensors.Image(torch.from_numpy(colour).permute(2, 0, 1).contiguous())
        out[f"torchvision {mode}: float tv Image"] = digest(augment({"image": float_image, "label": 1})["image"])
        batch, labels = test.images[:8], test.labels[:8]
        out[f"torchvision {mode}: batch"] = digest(augment(batch, labels)[0])
    cutout = gan_transforms.GANCutoutFill(run, p=1.0, device="cpu")
    torch.manual_seed(4)
    out["torchvision GANCutoutFill"] = digest(cutout(torch.from_numpy(gray)[None], 5)[0], cutout(test.images[:3])[0])

    # --- sample bank, datasets, expand ---------------------------------------------------------
    sample_bank = ganaug.SampleBank(run, size_per_class=3, refresh_every=5, refresh_size=4, device="cpu", seed=5)
    draws = [sample_bank.draw([1, 2, 3], rng=torch.Generator().manual_seed(i)) for i in range(4)]
    out["sample bank: draws with refreshes"] = digest(*draws)
    synthetic = ganaug.SyntheticDataset(run, num_per_class=2, seed=1, device="cpu").materialize(batch_size=7)
    out["SyntheticDataset"] = digest(*[synthetic[i][0] for i in range(len(synthetic))], synthetic.targets)
    base = test.subset(torch.arange(0, 1000, 50))
    expanded = ganaug.ExpandedDataset(base, run, synthetic_ratio=0.5, balance="equalize", seed=2, device="cpu")
    out["ExpandedDataset"] = digest(*[expanded[i][0] for i in range(len(expanded))], expanded.targets)
    for fmt in ("imagefolder", "webdataset"):
        target = work / f"expand_{fmt}"
        cli_main(["-q", "expand", str(run), "--num-per-class", "3", "--out", str(target), "--format", fmt,
                  "--shard-size", "8", "--seed", "4", "--batch-size", "5", "--device", "cpu"])
        manifest = [json.loads(line) for line in (target / "manifest.jsonl").read_text().splitlines()]
        entries = [{k: v for k, v in e.items() if k != "checkpoint_sha256"} for e in manifest]
        if fmt == "imagefolder":
            files = [(target / e["file"]).read_bytes() for e in manifest]
        else:
            files = []
            for shard in sorted(target.glob("shard-*.tar")):
                with tarfile.open(shard) as tar:
                    files += [tar.extractfile(m).read() for m in tar.getmembers() if not m.name.endswith(".json")]
        out[f"expand {fmt}"] = digest(entries, *files)

    # --- evaluation ------------------------------------------------------------------------------
    report = ganaug.evaluate(gan, test.subset(torch.arange(0, 1000, 10)),
                             ganaug.EvalConfig(num=60, batch_size=32, kid_subsets=5, kid_subset_size=20))
    out["evaluate: metrics"] = digest(report["metrics"])

    # --- feature generation ----------------------------------------------------------------------
    network = ganaug.FeatureExtractor("resnet10t", pretrained=extractor, out_indices=(1, 2, 3))
    features, labels = ganaug.extract_features(small, network, batch_size=64, progress=False)
    out["extract_features"] = digest(features, labels)
    config = ganaug.FeatureGANConfig(steps=30, batch_size=32, critic_steps=2, hidden_dim=64, log_every=10, seed=3)
    feature_gan = ganaug.FeatureGAN(features.shape[1], 10, config).fit(features, labels)
    out["FeatureGAN: history"] = digest([{k: v for k, v in h.items() if k != "seconds"} for h in feature_gan.history])
    out["FeatureGAN: sample"] = digest(feature_gan.sample(40, seed=1))
    out["FeatureGAN: critic_distance"] = digest(feature_gan.critic_distance(features, labels, steps=10, seed=2))
    feature_gan.save_pretrained(work / "fgan")
    out["FeatureGAN: saved tensors"] = tensor_file_digest(next((work / "fgan").glob("*.safetensors")))
    keep = torch.cat([torch.nonzero(labels == c).flatten()[: 20 if c < 5 else 3] for c in range(10)])
    balanced = ganaug.FeatureDataset(features[keep], labels[keep], feature_gan, balance="equalize", seed=4)
    out["FeatureDataset"] = digest(balanced.features, balanced.labels)
    moment = ganaug.FeatureGANConfig(steps=10, batch_size=32, critic_steps=1, hidden_dim=64, moment_weight=0.1,
                                     moment_samples=4, class_balanced=False, seed=3)
    out["FeatureGAN: moment matching, unbalanced"] = digest(
        ganaug.FeatureGAN(features.shape[1], 10, moment).fit(features, labels).sample(20, seed=1))
    return out


def compare(old_path: Path, new_path: Path) -> int:
    old, new = json.loads(old_path.read_text()), json.loads(new_path.read_text())
    width = max(map(len, old.keys() | new.keys()))
    differ = 0
    for name in list(old) + [n for n in new if n not in old]:
        a, b = old.get(name, "-"), new.get(name, "-")
        same = a == b
        differ += not same
        print(f"{name:<{width}}  {a:<16}  {b:<16}  {'same' if same else 'DIFFERENT'}")
    print(f"\n{len(old.keys() | new.keys()) - differ} same, {differ} different ({old_path.name} vs {new_path.name})")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file of hashes to write")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"), help="compare two JSON files")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (kernels may round differently "
                                                                 "with other counts; default: 1)")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("give --out or --compare")
    import warnings

    import torch

    import ganaug

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"ganaug from {Path(ganaug.__file__).parent}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as work:
        hashes = collect(Path(work))
    args.out.write_text(json.dumps(hashes, indent=2))
    for name, value in hashes.items():
        print(f"{name:<48} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

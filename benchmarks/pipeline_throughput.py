"""Pipeline throughput: does GANAugment slow a real data pipeline down? And how fast does the generator run?

1. Fashion-MNIST (60k training images) through a DataLoader (2 workers, batch 128, shuffled):
   a standard augmentation chain alone, and the same chain with GANAugment(p=0.5) inserted, in
   one run, for albumentations and for torchvision.transforms.v2. The ratio of throughputs
   (with / without) is the figure; targets (#19): >= 0.9 for "replace" and "mix", >= 0.5 for
   "variant" made cheap. Each measurement is ``--epochs`` epochs over the 60k images, worker
   start-up included; the pipelines are measured in turn ``--repeats`` times, and both the ratio
   of the medians and the median of the per-repeat ratios (each repeat measures the chain alone
   and every pipeline in turn) are given, since one run's throughput varies by about 10% here. The
   sample bank is filled in the main process before the DataLoader starts, as
   docs/pipelines.md recommends, and refreshed inside the workers as they draw from it.
   "variant" runs the feature network and the generator for every augmented image; it is
   measured once, on ``--variant-images`` images. "variant-bank" is "variant" made cheap:
   ``variant_bank.add`` generates ``variants_per_image`` variants of each of the 60k training
   images in batches before the DataLoader starts (timed, and reported apart), and GANAugment goes
   first in the chain, where it sees the images as the dataset gives them; the workers then look
   an image up by its bytes and copy a variant. "reference-flip" inserts a second horizontal
   flip (the library's own, same ``p``) where GANAugment goes: what about the cheapest transform
   costs in this chain, for scale. "batch-MODE" (e.g. "batch-mix") runs
   ``ganaug.transforms.GANAugment(mode=MODE, seed=...)`` in batch mode after the DataLoader
   instead, in the main process. "replace" and "mix" take the chain's normalized batches as
   ``v2.MixUp`` does (``normalize=(MEAN, STD)``: the workers run the whole chain, and the bank,
   filled before the loader, is normalized once; one gather per batch, #28's goal >= 0.97).
   "batch-replace@fixed" (or mix) does the same with a bank that is never refreshed
   (``refresh_every=None``): what the refresh's generation, in the main process, costs.
   "variant" reads uint8 images: the workers run the chain without its normalization, and the
   main process makes one generator pass per batch, then normalizes; with it the chain alone is
   also measured with its normalization moved after the loader ("chain alone, normalized after
   the loader"), which is what it adds its step to. Each batch transform's own time is recorded
   twice: inside the loop (``after_ms_per_batch``, beside the row's ``batch_ms``) and alone on a
   random batch before the loops (``call_ms``), a figure free of the loop's noise.
   "reference-mixup" runs torchvision's ``v2.MixUp`` on each normalized batch after the loader
   instead: what a batch transform of torchvision's own costs there, for scale.
   "reference-gc-freeze" is the chain alone with ``gc.freeze()`` in every worker at start
   (after the dataset and the transforms are built): the tip of #19's notes, measured.
   Every pipeline is measured in turn with the others (interleaved).
2. Raw generation: images/s of ``GANAug.sample`` at batch 256, as a fraction of the fp32 matmul
   FLOP/s measured in the same run (generator FLOPs counted by torch's FlopCounterMode); target
   >= 50%. The textbook conditional DCGAN generator (benchmarks/cdcgan.py) is measured the same
   way, for reference.

    python benchmarks/pipeline_throughput.py                 # uses or trains a model in benchmarks/cache
    python benchmarks/pipeline_throughput.py --model runs/fmnist --repeats 5
    python benchmarks/pipeline_throughput.py --model runs/fmnist --repeats 7 --skip-generation \
        --modes batch-replace,batch-mix,reference-gc-freeze --out benchmarks/results/pipeline_throughput_batch.json

Prints a table and writes benchmarks/results/pipeline_throughput.json (or ``--out``). Run it alone:
other processes on the machine distort throughput.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import v2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from cdcgan import CDCGANGenerator  # noqa: E402

import ganaug  # noqa: E402
from ganaug import albumentations as gan_albumentations  # noqa: E402
from ganaug import transforms as gan_transforms  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "pipeline_throughput.json"
CACHED_MODEL = ROOT / "benchmarks" / "cache" / "convergence" / "default" / "gan"
MEAN, STD = 0.286, 0.353


class AlbumentationsDataset(Dataset):
    """Fashion-MNIST as numpy HW uint8 images through an albumentations Compose (with class_label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: A.Compose):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        label = int(self.labels[index])
        return self.transform(image=self.images[index], class_label=label)["image"], label


class TorchvisionDataset(Dataset):
    """Fashion-MNIST as uint8 (1, H, W) tensors through a v2.Compose called on (image, label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Compose):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index], int(self.labels[index]))


def albumentations_chain(extra: list, normalize: bool = True, first: tuple = ()) -> A.Compose:
    """The chain; ``normalize=False`` ends on uint8 tensors (for a batch transform after the loader).

    ``extra`` goes after the augmentations, ``first`` before them.
    """
    return A.Compose([
        *first,
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.08, 0.08), rotate=(-10, 10), p=0.7),
        A.RandomBrightnessContrast(p=0.5),
        *extra,
        *([A.Normalize(mean=(MEAN,), std=(STD,))] if normalize else []),
        ToTensorV2(),
    ], seed=0)


def torchvision_chain(extra: list, normalize: bool = True, first: tuple = ()) -> v2.Compose:
    """The chain; ``normalize=False`` ends on uint8 tensors (for a batch transform after the loader).

    ``extra`` goes after the augmentations, ``first`` before them.
    """
    return v2.Compose([
        *first,
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomApply([v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1))], p=0.7),
        v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2)], p=0.5),
        *extra,
        *([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=(MEAN,), std=(STD,))] if normalize else []),
    ])


def normalized(images: torch.Tensor) -> torch.Tensor:
    """What the chain's own normalization makes of uint8 (or [0, 1] float) images."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images
    return (x - MEAN) / STD


def freeze_gc_worker_init(worker_id: int) -> None:
    """A worker starts by moving every object it inherited out of the garbage collector's sight (``gc.freeze``)."""
    gc.freeze()


def albumentations_freeze_gc_worker_init(worker_id: int) -> None:
    """ganaug's albumentations ``worker_init_fn`` (it re-seeds the Compose), then ``gc.freeze``."""
    gan_albumentations.worker_init_fn(worker_id)
    gc.freeze()


def loader_throughput(dataset: Dataset, epochs: int, batch_size: int, workers: int, seed: int,
                      worker_init_fn=None, after=None) -> dict:
    """Images/s through a DataLoader over ``epochs`` epochs (the first, with worker start-up, included).

    ``after(images, labels)``, when given, runs on every batch in this process (and is timed).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, worker_init_fn=worker_init_fn,
                        generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    epoch_seconds = []
    count, batches, after_seconds = 0, 0, 0.0
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        for images, labels in loader:
            if after is not None:
                call_start = time.perf_counter()
                images = after(images, labels)
                after_seconds += time.perf_counter() - call_start
            count += len(images)
            batches += 1
        epoch_seconds.append(time.perf_counter() - epoch_start)
    seconds = time.perf_counter() - start
    del loader
    timing = {"after_ms_per_batch": 1000 * after_seconds / batches} if after is not None else {}
    return {"images": count, "seconds": seconds, "images_per_s": count / seconds, "epoch_seconds": epoch_seconds,
            "batch_ms": 1000 * seconds / batches, **timing}


def batch_call_ms(after, batch_size: int, uint8: bool, calls: int = 600, budget_s: float = 5.0) -> float:
    """Milliseconds per call of ``after(images, labels)`` on a random (batch_size, 1, 28, 28) batch (uint8, or as the
    chain normalizes it), after 5 warm-up calls; up to ``calls`` calls or ``budget_s`` seconds."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 1, 28, 28), dtype=torch.uint8, generator=generator)
    images = images if uint8 else normalized(images)
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    for _ in range(5):
        after(images, labels)
    start, done = time.perf_counter(), 0
    while done < calls and time.perf_counter() - start < budget_s:
        after(images, labels)
        done += 1
    return 1000 * (time.perf_counter() - start) / done


def median_run(results: list[dict]) -> dict:
    """The run with the median throughput, with every repeat's throughput attached."""
    ordered = sorted(results, key=lambda r: r["images_per_s"])
    return {**ordered[len(ordered) // 2], "repeats_images_per_s": [r["images_per_s"] for r in results]}


def matmul_flops(seconds: float = 3.0, size: int = 1024) -> float:
    """Measured fp32 matmul FLOP/s (square matrices, torch's current thread count)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)


def generation_rate(sample, seconds: float = 5.0) -> float:
    """Images/s of ``sample()`` (one call makes one batch), after one warm-up call."""
    batch = len(sample())
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        sample()
        count += batch
    return count / (time.perf_counter() - start)


def flops_per_image(forward, batch: int = 8) -> float:
    with FlopCounterMode(display=False) as counter:
        forward(batch)
    return counter.get_total_flops() / batch


def mode_grid(model: Path, test: ganaug.ImageDataset, path: Path) -> None:
    """Eight test images (top row) and what each mode makes of them (rows: replace, mix, variant)."""
    from ganaug._util.files import save_image_grid

    picks = torch.arange(0, len(test), len(test) // 8)[:8]
    rows = [test.images[picks]]
    for mode in ("replace", "mix", "variant"):
        compose = A.Compose([gan_albumentations.GANAugment(model, mode=mode, p=1.0, bank_seed=0)], seed=0)
        rows.append(torch.stack([torch.from_numpy(compose(image=test.images[i, 0].numpy(),
                                                          class_label=int(test.labels[i]))["image"])[None]
                                 for i in picks.tolist()]))
    save_image_grid(torch.cat(rows), path, nrow=8, scale=3)


def get_model(args: argparse.Namespace, train: ganaug.ImageDataset) -> Path:
    if args.model is not None:
        return args.model
    if CACHED_MODEL.is_dir():
        return CACHED_MODEL
    run_dir = ROOT / "benchmarks" / "cache" / "pipeline" / "gan"
    if not (run_dir / "checkpoint.safetensors").is_file():
        print(f"training a {args.train_minutes}-minute model in {run_dir} (pass --model to use your own)", flush=True)
        ganaug.train(train, ganaug.TrainConfig(minutes=args.train_minutes), run_dir)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="run directory or export (default: cached/trained)")
    parser.add_argument("--train-minutes", type=float, default=5.0, help="budget when a model must be trained")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each fast pipeline (the median counts)")
    parser.add_argument("--variant-images", type=int, default=10000, help="images in the one variant-mode run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--modes", default="replace,mix,variant,variant-bank,batch-variant",
                        help="GANAugment modes to measure")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--refresh-every", type=int, default=None,
                        help="bank refresh period (default: the transform's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libraries", default="albumentations,torchvision", help="whose training loops to measure")
    parser.add_argument("--main-threads", type=int, default=None,
                        help="torch threads of the main process, where batch transforms run (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file to write (default: {RESULTS})")
    parser.add_argument("--skip-generation", action="store_true",
                        help="measure the pipelines only (no raw generation rate, no mode grid)")
    args = parser.parse_args()
    if args.main_threads:
        torch.set_num_threads(args.main_threads)
    torch.manual_seed(args.seed)

    train = ganaug.load_fashion_mnist("train")
    if args.limit:
        train = train.subset(torch.arange(min(args.limit, len(train))))
    model = get_model(args, train)
    images_np = train.images[:, 0].numpy()
    labels_np = train.labels.numpy()
    modes = [m for m in args.modes.split(",") if m]
    bank = {} if args.refresh_every is None else {"refresh_every": args.refresh_every}

    rows = []
    variant_banks = {}  # the variants made in advance, once: both libraries' datasets give the same bytes

    def record(pipeline: str, variant: str, result: dict, baseline: dict | None) -> None:
        ratio = paired = None
        if baseline is not None:
            ratio = result["images_per_s"] / baseline["images_per_s"]
            # each repeat measured the chain alone and this pipeline in turn: their ratio, repeat by repeat
            measured = result["repeats_images_per_s"]  # "variant" live runs once: paired with the first repeat
            rounds = [r / b for r, b in zip(measured, baseline["repeats_images_per_s"][:len(measured)], strict=True)]
            paired = {"median": float(np.median(rounds)), "min": min(rounds), "max": max(rounds), "rounds": rounds}
        rows.append({"pipeline": pipeline, "variant": variant, **result, "ratio": ratio, "paired_ratio": paired})
        shown = "" if ratio is None else (f"  ratio {ratio:.2f} (paired by repeat: median {paired['median']:.2f}, "
                                          f"{paired['min']:.2f}-{paired['max']:.2f})")
        if "after_ms_per_batch" in result:  # the batch transform's own time in the main process, in the loop and alone
            shown += (f"  (main process: {result['after_ms_per_batch']:.2f} of {result['batch_ms']:.1f} ms per batch; "
                      f"alone {result['call_ms']:.2f} ms)")
        print(f"{pipeline:<15} {variant:<22} {result['images_per_s']:8.0f} img/s{shown}", flush=True)

    # 1. Pipelines: the chain alone and with GANAugment, measured in turn, --repeats times (medians).
    for pipeline in args.libraries.split(","):
        def make(extra: list, pipeline: str = pipeline, normalize: bool = True, first: tuple = ()) -> Dataset:
            if pipeline == "albumentations":
                return AlbumentationsDataset(images_np, labels_np, albumentations_chain(extra, normalize, first))
            return TorchvisionDataset(train.images, train.labels, torchvision_chain(extra, normalize, first))

        adapter = gan_albumentations if pipeline == "albumentations" else gan_transforms
        init = gan_albumentations.worker_init_fn if pipeline == "albumentations" else None  # v2 needs none
        datasets = {"chain alone": make([])}
        afters, inits = {}, {}
        uint8_afters = set()  # the afters that read the chain's uint8 batches (its normalization moved after them)
        if "batch-variant" in modes:  # what batch "variant" adds its step to: it reads uint8 images
            datasets["chain alone, normalized after the loader"] = make([], normalize=False)
            afters["chain alone, normalized after the loader"] = lambda images, labels: normalized(images)
            uint8_afters.add("chain alone, normalized after the loader")
        for mode in modes:
            if mode == "batch-variant":  # after the loader, on uint8 batches, then the chain's normalization
                batch_augment = gan_transforms.GANAugment(model, mode="variant", p=args.p, device="cpu",
                                                          seed=args.seed, **bank)
                name = "+ GANAugment variant, batch mode after the loader"
                datasets[name] = make([], normalize=False)
                afters[name] = lambda images, labels, a=batch_augment: normalized(a(images, labels)[0])
                uint8_afters.add(name)
                continue
            if mode.startswith("batch-"):  # after the loader, in this process, on the chain's normalized batches
                kind, _, option = mode.removeprefix("batch-").partition("@")  # "@fixed": a bank never refreshed
                if option not in ("", "fixed"):
                    raise SystemExit(f"--modes: {mode!r}: the only option after '@' is 'fixed'")
                batch_augment = gan_transforms.GANAugment(model, mode=kind, p=args.p, device="cpu", seed=args.seed,
                                                          normalize=(MEAN, STD),
                                                          **({"refresh_every": None} if option == "fixed" else bank))
                batch_augment.bank.fill()  # before the loop, as docs/pipelines.md says
                name = f"+ GANAugment {kind}, batch mode after the loader" + (", bank not refreshed" if option else "")
                datasets[name] = make([])
                afters[name] = lambda images, labels, a=batch_augment: a(images, labels)[0]
                continue
            if mode == "reference-mixup":  # torchvision's own batch transform after the loader, for scale
                mixup = v2.MixUp(alpha=1.0, num_classes=10)
                datasets["reference: + v2.MixUp after the loader"] = make([])
                afters["reference: + v2.MixUp after the loader"] = lambda images, labels, m=mixup: m(images, labels)[0]
                continue
            if mode == "reference-gc-freeze":  # the chain alone; each worker freezes what it inherited
                datasets["reference: chain alone, gc.freeze() in each worker"] = make([])
                inits["reference: chain alone, gc.freeze() in each worker"] = (
                    albumentations_freeze_gc_worker_init if pipeline == "albumentations" else freeze_gc_worker_init)
                continue
            if mode == "reference-flip":  # what the cheapest transform of the library costs in this chain
                flip = A.HorizontalFlip(p=args.p) if pipeline == "albumentations" else v2.RandomHorizontalFlip(p=args.p)
                datasets[f"reference: + a second horizontal flip (p={args.p})"] = make([flip])
                continue
            if mode == "variant-bank":
                augment = adapter.GANAugment(model, mode="variant", p=args.p, device="cpu", bank_seed=args.seed)
                if not variant_banks:
                    start = time.perf_counter()
                    variant_banks["bank"] = augment.variant_bank.add(train, progress=True)
                    variant_banks["seconds"] = time.perf_counter() - start
                    print(f"variants made in advance: {augment.variant_bank.per_image} of each of {len(train)} "
                          f"images in {variant_banks['seconds']:.0f} s ({augment.variant_bank.nbytes / 2**20:.0f} MiB)",
                          flush=True)
                augment.core.variants = variant_banks["bank"]  # the same images: the other library's bank serves
                datasets["+ GANAugment variant, variants made in advance (first)"] = make([], first=(augment,))
                continue
            augment = adapter.GANAugment(model, mode=mode, p=args.p, device="cpu", **bank)
            if mode != "variant":
                augment.bank.fill()  # before the workers start: they share it
            datasets[f"+ GANAugment {mode}"] = make([augment])
        # each batch transform's own time, alone on this process's threads, before the loops (it refreshes the bank
        # as the loop would: a few hundred calls cross the library's refresh point at p = 0.5)
        calls = {name: batch_call_ms(after, args.batch_size, uint8=name in uint8_afters)
                 for name, after in afters.items()}
        runs: dict[str, list[dict]] = {name: [] for name in datasets}
        for _ in range(args.repeats):
            for name, dataset in datasets.items():
                if not name.endswith("variant"):
                    runs[name].append(loader_throughput(dataset, args.epochs, args.batch_size, args.workers,
                                                        args.seed, inits.get(name, init), afters.get(name)))
        for name, dataset in datasets.items():  # variant runs the feature network per image: one shorter run
            if name.endswith("variant"):
                subset = torch.utils.data.Subset(dataset, range(min(args.variant_images, len(dataset))))
                runs[name].append(loader_throughput(subset, 1, args.batch_size, args.workers, args.seed, init))
        baseline = median_run(runs["chain alone"])
        for name, results in runs.items():
            record(pipeline, name, {**median_run(results), **({"call_ms": calls[name]} if name in calls else {})},
                   None if name == "chain alone" else baseline)

    if args.skip_generation:
        write_results(args, model, train, bank, variant_banks, rows, None, [])
        return

    # 2. Raw generation rate against the machine's matmul rate.
    gan = ganaug.GANAug.from_pretrained(model, device="cpu")
    matmul = matmul_flops()
    gan_rate = generation_rate(lambda: gan.sample(256, seed=1, batch_size=256))
    instance = gan.bank_features[:8].float() if gan.instance_conditional else None
    gan_flops = flops_per_image(lambda n: gan.generator(torch.randn(n, gan.generator.z_dim), torch.arange(n) % 10,
                                                        instance[:n] if instance is not None else None))
    dcgan = CDCGANGenerator().eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def dcgan_sample(n: int = 256) -> torch.Tensor:
        return dcgan(torch.randn(n, dcgan.z_dim), torch.arange(n) % 10)

    dcgan_rate = generation_rate(dcgan_sample)
    dcgan_flops = flops_per_image(dcgan_sample)
    generation = []
    for name, rate, flops in (("ganaug GANAug.sample", gan_rate, gan_flops),
                              ("textbook cDCGAN G", dcgan_rate, dcgan_flops)):
        generation.append({"generator": name, "images_per_s": rate, "flops_per_image": flops,
                           "flops_per_s": rate * flops, "fraction_of_matmul": rate * flops / matmul})
        print(f"{name:<22} {rate:8.0f} img/s  {flops / 1e6:6.1f} MFLOP/img  "
              f"{rate * flops / 1e9:6.1f} GFLOP/s = {rate * flops / matmul:.2f} of matmul", flush=True)

    print(f"\nmatmul fp32: {matmul / 1e9:.1f} GFLOP/s on {torch.get_num_threads()} threads")
    write_results(args, model, train, bank, variant_banks, rows, matmul, generation)
    grid = ROOT / "docs" / "images" / "pipeline_modes.png"
    mode_grid(model, ganaug.load_fashion_mnist("test"), grid)
    print(f"wrote {grid}")


def write_results(args: argparse.Namespace, model: Path, train: ganaug.ImageDataset, bank: dict, variant_banks: dict,
                  rows: list[dict], matmul: float | None, generation: list[dict]) -> None:
    """Print the tables and write the JSON (atomically)."""
    from ganaug._util.files import atomic_path

    print("\n| pipeline | variant | img/s | ratio of medians | paired ratio: median (range) |\n|---|---|---|---|---|")
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        paired = row["paired_ratio"]
        paired = "" if paired is None else f"{paired['median']:.2f} ({paired['min']:.2f}-{paired['max']:.2f})"
        print(f"| {row['pipeline']} | {row['variant']} | {row['images_per_s']:.0f} | {ratio} | {paired} |")
    if generation:
        print("\n| generator | img/s (batch 256) | MFLOP/img | fraction of matmul FLOP/s |\n|---|---|---|---|")
    for row in generation:
        print(f"| {row['generator']} | {row['images_per_s']:.0f} | {row['flops_per_image'] / 1e6:.1f} | "
              f"{row['fraction_of_matmul']:.2f} |")
    text = json.dumps({
        "command": " ".join(sys.argv),
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "settings": {"epochs": args.epochs, "repeats": args.repeats, "variant_images": args.variant_images,
                     "workers": args.workers, "batch_size": args.batch_size, "p": args.p,
                     "main_process_threads": torch.get_num_threads(),
                     "images": len(train), "bank": "filled in the main process before the workers start",
                     "bank_args": bank or "transform defaults",
                     "variants_made_in_advance": None if not variant_banks else {
                         "per_image": variant_banks["bank"].per_image, "images": len(variant_banks["bank"]),
                         "seconds": variant_banks["seconds"], "mib": variant_banks["bank"].nbytes / 2**20}},
        "pipelines": rows,
        "matmul_flops_per_s": matmul,
        "generation": generation,
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
    }, indent=2)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

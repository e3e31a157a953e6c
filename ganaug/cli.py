"""The ``ganaug`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("timm").setLevel(logging.WARNING)
    try:
        return args.handler(args) or 0
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, ConnectionError, RuntimeError) as error:
        print(f"ganaug {args.command}: error: {error}", file=sys.stderr)
        return 2


def _build_parser() -> argparse.ArgumentParser:
    from ganaug import __version__

    parser = argparse.ArgumentParser(
        prog="ganaug",
        description="Generative data augmentation with class- and feature-conditional GANs and timm feature networks.",
    )
    parser.add_argument("--version", action="version", version=f"ganaug {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="versions, device, data sources and cached weights",
                               description="Print package versions, the compute device (CUDA or CPU), the "
                                           "Fashion-MNIST sources found and the pretrained weights cached locally.")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=_info)

    pretrain = commands.add_parser(
        "pretrain-extractor", help="train a timm feature network on your own labelled images (offline)",
        description="Train a timm classifier on labelled images and save it as a .safetensors file that "
                    "FeatureExtractor(model_name, pretrained=FILE) loads. This is the offline way to a pretrained "
                    "extractor; use timm's hub weights instead where you can download them.")
    _add_data_arguments(pretrain)
    pretrain.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    pretrain.add_argument("--model", default="resnet18", help="timm model name (default: resnet18)")
    pretrain.add_argument("--input-size", type=int, default=32, help="side of the network's input (default: 32)")
    pretrain.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    pretrain.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    pretrain.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (default: 2e-3)")
    pretrain.add_argument("--val-fraction", type=float, default=0.1, help="held-out share per class (default: 0.1)")
    pretrain.add_argument("--no-hflip", action="store_true", help="no random horizontal flips")
    pretrain.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    pretrain.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    pretrain.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    pretrain.set_defaults(handler=_pretrain)

    demo = commands.add_parser("demo", help="the quick-start demo on the embedded Fashion-MNIST subset",
                               description="Train a feature network on the embedded Fashion-MNIST subset and show "
                                           "what its features are worth (a few CPU minutes).")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    demo.add_argument("--epochs", type=int, default=8, help="extractor training epochs (default: 8)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(handler=_demo)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="'fashion-mnist' (or fashion-mnist:debian|download|embedded|root), or an ImageFolder "
                             "folder (one subfolder per class, or train/ and test/ trees)")
    parser.add_argument("--split", default="train", choices=("train", "test"), help="which split (default: train)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="resize images to this square size (default: 28 for Fashion-MNIST, 64 for folders)")
    parser.add_argument("--channels", type=int, default=None, choices=(1, 3),
                        help="1 or 3 channels (default: 1 for Fashion-MNIST, 3 for folders)")


def _info(args: argparse.Namespace) -> int:
    from ganaug.environment import environment_report

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
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from ganaug.data import load_dataset
    from ganaug.pretrain import PretrainConfig, pretrain_extractor

    config = PretrainConfig(model_name=args.model, input_size=args.input_size, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, val_fraction=args.val_fraction,
                            hflip=not args.no_hflip, max_minutes=args.max_minutes, seed=args.seed, device=args.device)
    dataset = load_dataset(args.data, split=args.split, image_size=args.image_size, channels=args.channels,
                           progress=True)
    result = pretrain_extractor(dataset, args.out, config)
    print(f"held-out accuracy {result.val_accuracy:.4f} on {result.num_val} images after {result.epochs} epochs "
          f"({result.seconds:.0f} s, {result.num_train} training images)")
    print(f"saved {result.path}; use it as FeatureExtractor({args.model!r}, pretrained={str(result.path)!r})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ganaug.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out_dir=args.out, epochs=args.epochs, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

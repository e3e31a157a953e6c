"""Write a synthetic dataset to disk: PNGs in class folders, or WebDataset tar shards, plus a manifest.

Item ``i`` (ordered by class, ``num_per_class`` each) is generated from
``item_seed(seed, i)``, so the output does not depend on batching, on sharding, or on how many
times the job was interrupted. Every file is written to a temporary name and renamed, so a
killed job leaves complete files only; running it again skips what exists. The settings an
output folder is made with (weights, seed, counts, format, truncation) are kept in its
``expand.json``, and a run with other settings is refused rather than mixed in. ``num_shards`` /
``shard_index`` (or the ``WORLD_SIZE`` / ``RANK`` that torchrun sets) split the items between
processes with no overlap: item ``i`` (or tar shard ``t``) belongs to ``i % num_shards``.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import torch

from ganaug._util.files import atomic_path, remove_stale_temporaries, sha256_of
from ganaug._util.model_files import find_model_files
from ganaug._util.validate import check_choice, check_positive_int, check_truncation
from ganaug.adapters.datasets import item_seed
from ganaug.sampling.gan import GANAug

__all__ = ["FORMATS", "ExpandResult", "checkpoint_hash", "expand_dataset", "shard_from_environment"]

FORMATS = ("imagefolder", "webdataset")


@dataclass
class ExpandResult:
    """What :func:`expand_dataset` did."""

    out: Path
    manifest: Path
    written: int
    skipped: int
    items: int  # this shard's items
    seconds: float


def checkpoint_hash(model_path: str | os.PathLike) -> str:
    """SHA-256 of the weights file of a run directory or an export (identifies which weights made an image)."""
    return sha256_of(find_model_files(model_path).weights)


def shard_from_environment() -> tuple[int, int]:
    """``(num_shards, shard_index)`` from torchrun's ``WORLD_SIZE`` and ``RANK``; ``(1, 0)`` without them."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def expand_dataset(model: str | os.PathLike, out: str | os.PathLike, num_per_class: int,
                   output_format: str = "imagefolder", seed: int = 0, num_shards: int | None = None,
                   shard_index: int | None = None, shard_size: int = 1000, batch_size: int = 256,
                   truncation: float = 1.0, device: str | None = None, progress: bool = True) -> ExpandResult:
    """Generate ``num_per_class`` images per class and write them under ``out``.

    Args:
        model: a run directory or an exported model.
        out: output directory (created).
        num_per_class: images per class.
        output_format: "imagefolder" (``out/<class>/<index>.png``) or "webdataset"
            (``out/shard-<t>.tar`` with ``<key>.png``, ``<key>.cls`` and ``<key>.json``).
        seed: base seed; item ``i`` is made from ``item_seed(seed, i)``.
        num_shards, shard_index: this process's part of the work; default from torchrun's
            environment, else all of it.
        shard_size: items per tar file ("webdataset").
        batch_size: images per generator pass.
        truncation: noise scale in (0, 1].
        device: where to generate; default CUDA when available.
        progress: show a progress bar.

    Returns:
        An :class:`ExpandResult`; the manifest (``manifest.jsonl``, or
        ``manifest-<I>-of-<K>.jsonl`` per shard) lists every item of this shard with its file,
        label, class name, seed, truncation and the checkpoint's SHA-256: enough to regenerate
        it exactly with ``GANAug.sample_seeded([label], [seed], truncation=truncation)``.
    """
    from tqdm.auto import tqdm

    check_choice("output_format", output_format, FORMATS)
    check_positive_int("num_per_class", num_per_class)
    check_positive_int("shard_size", shard_size)
    check_positive_int("batch_size", batch_size)
    check_truncation(truncation)
    env_shards, env_index = shard_from_environment()
    num_shards = env_shards if num_shards is None else num_shards
    if shard_index is None and num_shards != env_shards and env_shards > 1:
        raise ValueError(f"num_shards={num_shards} differs from torchrun's WORLD_SIZE={env_shards}: give "
                         "shard_index too, or leave num_shards out (every rank would otherwise take shard 0)")
    shard_index = (env_index if num_shards == env_shards else 0) if shard_index is None else shard_index
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index should lie in [0, num_shards) with num_shards >= 1, got shard_index="
                         f"{shard_index} and num_shards={num_shards}")
    started = time.perf_counter()
    model_hash = checkpoint_hash(model)
    gan = GANAug.from_pretrained(model, device=device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, recursive=True)  # a killed earlier write's; a resumed one rewrites its files
    _check_settings(out, {"checkpoint_sha256": model_hash, "classes": list(gan.classes), "seed": seed,
                          "num_per_class": num_per_class, "output_format": output_format, "truncation": truncation,
                          **({"shard_size": shard_size} if output_format == "webdataset" else {})})
    folders = _class_folders(gan.classes)
    total = gan.num_classes * num_per_class

    def entry(index: int) -> dict:
        label = index // num_per_class
        return {"index": index, "label": label, "class": gan.classes[label], "seed": item_seed(seed, index),
                "truncation": truncation, "checkpoint_sha256": model_hash}

    if output_format == "imagefolder":
        groups = [[i] for i in range(shard_index, total, num_shards)]
        names = [f"{folders[i // num_per_class]}/{i:08d}.png" for [i] in groups]
    else:
        groups = [list(range(t * shard_size, min((t + 1) * shard_size, total)))
                  for t in range(shard_index, -(-total // shard_size), num_shards)]
        names = [f"shard-{i[0] // shard_size:06d}.tar" for i in groups]
    todo = [(name, group) for name, group in zip(names, groups, strict=True) if not _complete(out / name)]
    items = sum(len(g) for g in groups)
    written = 0
    bar = tqdm(total=items, initial=items - sum(len(g) for _, g in todo), unit="img", desc="expand",
               disable=not progress, dynamic_ncols=True)
    pending: list[tuple[str, list[int]]] = []
    for position, job in enumerate(todo):
        pending.append(job)
        if sum(len(g) for _, g in pending) >= batch_size or position == len(todo) - 1:
            indices = [i for _, group in pending for i in group]
            entries = [entry(i) for i in indices]
            images = gan.sample_seeded([e["label"] for e in entries], [e["seed"] for e in entries],
                                       truncation=truncation).cpu()
            offset = 0
            for name, group in pending:
                part = images[offset:offset + len(group)]
                if output_format == "imagefolder":
                    _write_png(out / name, part[0])
                else:
                    _write_tar(out / name, part, entries[offset:offset + len(group)])
                offset += len(group)
            written += len(indices)
            bar.update(len(indices))
            pending = []
    bar.close()
    manifest = out / ("manifest.jsonl" if num_shards == 1 else f"manifest-{shard_index:05d}-of-{num_shards:05d}.jsonl")
    with atomic_path(manifest) as tmp, open(tmp, "w") as handle:
        for name, group in zip(names, groups, strict=True):
            for index in group:
                file = name if output_format == "imagefolder" else f"{name}#{index:08d}"
                handle.write(json.dumps({"file": file, **entry(index)}) + "\n")
    return ExpandResult(out=out, manifest=manifest, written=written, skipped=items - written, items=items,
                        seconds=time.perf_counter() - started)


SETTINGS_FILE = "expand.json"


def _check_settings(out: Path, settings: dict) -> None:
    """Record what ``out`` is made with; a later run (a resume, another shard) must use the same.

    Files are skipped when they exist, so a run with other settings would otherwise leave a mix
    of old and new images that the manifest does not describe.
    """
    path = out / SETTINGS_FILE
    settings = json.loads(json.dumps(settings))  # as it reads back
    if path.is_file():
        recorded = json.loads(path.read_text())
        changed = sorted(k for k in settings.keys() | recorded.keys() if settings.get(k) != recorded.get(k))
        if changed:
            details = ", ".join(f"{k}: {recorded.get(k)!r} there, {settings.get(k)!r} now" for k in changed
                                if k != "checkpoint_sha256")
            if "checkpoint_sha256" in changed:
                details = ", ".join(filter(None, ["other model weights", details]))
            raise ValueError(f"out {str(out)!r} was written with other settings ({details}); resume with the same "
                             "settings, or write to a new folder")
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))


def _class_folders(classes: tuple[str, ...]) -> list[str]:
    """Folder names for class names: path-safe, and unique."""
    folders = []
    for i, name in enumerate(classes):
        folder = re.sub(r"[^\w.\- ]+", "_", name).strip(" .") or f"class_{i}"
        folders.append(folder if folder not in folders else f"{folder}_{i}")
    return folders


def _complete(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _png_bytes(image: torch.Tensor) -> bytes:
    array = image.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    PIL.Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_png(path: Path, image: torch.Tensor) -> None:
    with atomic_path(path, fsync=False) as tmp:
        tmp.write_bytes(_png_bytes(image))


def _write_tar(path: Path, images: torch.Tensor, entries: list[dict]) -> None:
    with atomic_path(path) as tmp, tarfile.open(tmp, "w") as tar:
        for image, item in zip(images, entries, strict=True):
            key = f"{item['index']:08d}"
            for suffix, data in (("png", _png_bytes(image)), ("cls", str(item["label"]).encode()),
                                 ("json", json.dumps(item).encode())):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))


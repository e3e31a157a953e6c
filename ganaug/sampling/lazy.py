"""A GANAug that loads itself lazily, in the process that uses it: what makes transforms and datasets picklable.

A transform or a dataset that holds a model path pickles as a string; each DataLoader worker
(or the main process) loads the model on first use, on the device chosen for that process.
"""

from __future__ import annotations

import copy
import os
import threading

import torch
from torch.utils.data import get_worker_info

from ganaug._util.model_files import model_path
from ganaug._util.validate import check_choice
from ganaug.sampling.gan import GANAug

__all__ = ["DEVICES", "LazyGAN"]

DEVICES = ("cpu", "cuda", "auto")


class LazyGAN:
    """A model path (or a loaded :class:`GANAug`) plus a device rule.

    Args:
        model: a run directory or exported model (kept as an absolute path), or a loaded GANAug
            (then pickled with it). A given GANAug is never moved: where this process needs it on
            another device, a copy is moved instead.
        device: "cpu", "cuda", or "auto": the GPU in the main process when there is one, the CPU
            inside DataLoader workers (CUDA cannot run in a forked worker).
    """

    def __init__(self, model: str | os.PathLike | GANAug, device: str = "auto"):
        check_choice("device", device, DEVICES)
        if isinstance(model, GANAug):
            self.path, self._given = None, model
        elif isinstance(model, (str, os.PathLike)):
            # a missing or foreign folder fails here, not in a DataLoader worker
            self.path, self._given = model_path(model), None
        else:
            raise TypeError(f"model should be a path or a GANAug, got {type(model).__name__}")
        self.device = device
        self._gan: GANAug | None = self._given  # the model this process uses
        self._init_process_state()

    def _init_process_state(self) -> None:
        # a lock does not cross fork safely (another thread may hold it at that moment) nor pickle
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def resolved_device(self) -> torch.device:
        """Where this process generates: see ``device``."""
        in_worker = get_worker_info() is not None
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() and not in_worker else "cpu")
        if self.device == "cuda" and in_worker and torch.cuda._is_in_bad_fork():
            raise RuntimeError("device='cuda' cannot generate in a forked DataLoader worker, where CUDA does not "
                               "work; use device='cpu' or 'auto' in workers, or generate on the GPU after the "
                               "DataLoader (the torchvision transform's batch mode)")
        return torch.device(self.device)

    @property
    def loaded(self) -> bool:
        """Whether this process holds the model (a path-backed one is loaded on first use, and again after
        pickling)."""
        return self._gan is not None

    @property
    def gan(self) -> GANAug:
        """The model, loaded on first use in this process, on this process's device."""
        device = self.resolved_device()
        if os.getpid() != self._pid:  # forked: the parent's lock may have been held by one of its threads
            self._init_process_state()
        with self._lock:
            if self._gan is None or self._gan.device != device:
                if self.path is not None:
                    self._gan = GANAug.from_pretrained(self.path, device=device)
                else:
                    self._gan = self._given if self._given.device == device else copy.deepcopy(self._given).to(device)
        return self._gan

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_pid")}
        state["_gan"] = self._given  # a path is loaded again where it is needed; a given model travels as it is
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    def __repr__(self) -> str:
        return repr(self.path) if self.path is not None else repr(self._given)

"""Checkpoints with `torch.distributed.checkpoint` (DCP).

    <run_dir>/train/checkpoints/step_00000100/
        .metadata, __0_0.distcp, ...   model and optimizer, sharded as trained (DCP)
        rng_rank0.pt ...               RNG states of each rank
        trainer.json                   step, tokens, loss history, world size, config
        COMPLETE                       written last, by rank 0, after every rank saved

A checkpoint without COMPLETE (killed while saving) is never picked by `latest`.
DCP reshards on load, so a run resumes on a different number of ranks.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import numpy as np

COMPLETE = "COMPLETE"
PREFIX = "step_"


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"{PREFIX}{step:08d}"


def list_complete(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    out = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / COMPLETE).is_file()]
    return sorted(out, key=lambda p: int(p.name[len(PREFIX) :]))


def latest(root: str | Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None."""
    done = list_complete(root)
    return done[-1] if done else None


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def rng_state() -> dict:
    import torch

    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def set_rng_state(st: dict) -> None:
    import torch

    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"])


def save(root: str | Path, step: int, model, optimizer, trainer_state: dict, keep: int = 3) -> Path:
    """Save on every rank (collective); rank 0 marks it complete and prunes old ones."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    path = step_dir(Path(root), step)
    if _rank() == 0:
        if path.exists():  # a leftover of a killed save of the same step
            shutil.rmtree(path)
        path.mkdir(parents=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))
    torch.save(rng_state(), path / f"rng_rank{_rank()}.pt")
    _barrier()
    if _rank() == 0:
        (path / "trainer.json").write_text(json.dumps(trainer_state, indent=1) + "\n")
        tmp = path / (COMPLETE + ".tmp")
        tmp.write_text(f"{step}\n")
        tmp.replace(path / COMPLETE)
        for old in list_complete(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        # incomplete leftovers older than this one are dead
        for p in Path(root).iterdir():
            if p.is_dir() and p.name.startswith(PREFIX) and not (p / COMPLETE).is_file() and p != path:
                if int(p.name[len(PREFIX) :]) < step:
                    shutil.rmtree(p, ignore_errors=True)
    _barrier()
    return path


def load(path: str | Path, model, optimizer) -> dict:
    """Load model, optimizer and this rank's RNG states; returns trainer.json."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = Path(path)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng = path / f"rng_rank{_rank()}.pt"
    if not rng.is_file():
        rng = path / "rng_rank0.pt"
    set_rng_state(torch.load(rng, weights_only=False))
    return json.loads((path / "trainer.json").read_text())


def load_model_weights(path: str | Path, model) -> None:
    """Load only the model weights into a plain (unsharded) module, in one process."""
    import torch.distributed.checkpoint as dcp

    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(path))
    model.load_state_dict(state["model"])

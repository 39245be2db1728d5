"""A resumable training loop: AdamW, warm-up then cosine decay, atomic checkpoints, seconds spent recorded."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def train(
    name: str,
    modules: dict[str, nn.Module],
    loss_fn: Callable[[torch.Generator], torch.Tensor],
    *,
    steps: int,
    lr: float,
    work_dir: Path,
    seed: int,
    warmup: int = 100,
    weight_decay: float = 0.01,
    checkpoint_every: int = 100,
    progress: bool = True,
) -> dict:
    """Train ``modules`` (their trainable parameters) on ``loss_fn(generator)`` for ``steps`` steps.

    Resumes from ``work_dir/name/state.pt`` when it exists (model, optimizer, schedule, generator, step count and
    seconds spent so far), so a run can be stopped at any point and continued in a later session.
    Returns ``{"steps", "seconds", "final_loss"}``.
    """
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed)
    state_path = work_dir / name / "state.pt"
    start, seconds, losses = 0, 0.0, []
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        for key, module in modules.items():
            module.load_state_dict(state["modules"][key])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start, seconds = state["step"], state["seconds"]
        logger.info("%s: resuming at step %d (%.0f s spent)", name, start, seconds)
    for module in modules.values():
        module.train()
    tick = time.perf_counter()
    bar = tqdm(range(start, steps), desc=name, initial=start, total=steps, disable=not progress)
    for step in bar:
        loss = loss_fn(generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.4f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            now = time.perf_counter()
            seconds, tick = seconds + now - tick, now
            _save(state_path, modules, optimizer, scheduler, generator, step + 1, seconds)
            recent = losses[-checkpoint_every:]
            logger.info("%s: step %d/%d, loss %.4f, %.0f s", name, step + 1, steps, sum(recent) / len(recent), seconds)
    for module in modules.values():
        module.eval()
    recent = losses[-50:]
    return {"steps": steps, "seconds": round(seconds, 1), "final_loss": sum(recent) / len(recent) if recent else None}


def _save(path: Path, modules, optimizer, scheduler, generator, step: int, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "modules": {key: module.state_dict() for key, module in modules.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "step": step,
        "seconds": seconds,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)

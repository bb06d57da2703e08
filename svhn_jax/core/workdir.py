"""A run's working directory: its config, metrics log, checkpoints and results, and reading it back.

Layout: .lock (one run at a time, `run_lock`), config.json (the run's config; a rerun with another
config is refused), metrics.jsonl and tensorboard/ (`MetricsLog`), checkpoints/ (orbax, one folder
per step, each with the SHA-256 of its state), eval_predictions.npz and final_metrics.json
(the trainer's, with `params_sha256`); overwritten-<time>/ (an earlier run that ``--overwrite``
set aside) and broken-checkpoints/ (checkpoints that failed to restore). Every file is written whole
(temporary file, fsync, then renamed), so a crash never leaves half a file, and a failed write
leaves the earlier file with a one-line error. `restore_latest` reads the newest good checkpoint
back (for a resumed run, and for `infer.weights` without the trainer).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from tensorboardX import SummaryWriter

from svhn_jax.core import config as config_lib
from svhn_jax.core.errors import UserError, one_line
from svhn_jax.core.fileio import LockHeld, atomic_write, hold_lock

# Keys that may change when a run is resumed: they do not change what is computed at a given step.
RESUMABLE_CHANGES = frozenset({"num_train_steps", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                               "keep_checkpoints", "max_eval_examples", "eval_batch_size", "data_dir"})


class RunError(UserError):
    """A run cannot go on; the message is one line for the user."""


@contextlib.contextmanager
def run_lock(workdir: Path) -> Iterator[None]:
    """Makes `workdir` and holds its lock while the block runs: one run per workdir.

    A second run on it is refused in one line that names the first one's process. Each process of
    a multi-process run locks its own file (.lock in process 0, .lock-<i> in process i), so every
    process of a second launch is refused, not only the first.
    """
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write-test-{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise RunError(f"workdir {workdir} is not writable: {e.strerror or e}") from None
    path = workdir / (".lock" if jax.process_index() == 0 else f".lock-{jax.process_index()}")
    try:
        with hold_lock(path):
            yield
    except LockHeld as e:
        raise RunError(f"workdir {workdir} is in use by {e} (lock file {path}); wait for that run to end "
                       "or use another workdir") from None


def check_resumable(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool = False) -> None:
    """Refuses a workdir that holds a run of another config (unless `overwrite`); writes nothing."""
    saved = workdir / "config.json"
    if saved.exists() and not overwrite:
        old, new = config_lib.saved(saved).to_dict(), json.loads(config.to_json_best_effort())
        changed = sorted(k for k in old.keys() | new.keys()
                         if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise RunError(f"workdir {workdir} holds a run of another config (differs in {', '.join(changed)}); "
                           "use a new workdir or --overwrite")


def start(config: ml_collections.ConfigDict, workdir: Path, overwrite: bool = False) -> None:
    """Saves config.json; with `overwrite`, first moves an earlier run aside so the run starts afresh.

    Called once the config is known to work (data found, model built), so a failing
    ``--overwrite`` leaves the earlier run as it was. Process 0 writes; every process waits for it.
    """
    if jax.process_index() == 0:
        if overwrite:
            set_aside_earlier_run(workdir)
        write_file(workdir / "config.json", lambda p: p.write_text(config.to_json_best_effort(indent=2) + "\n"))
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("svhn_jax:workdir-ready")


def set_aside_earlier_run(workdir: Path) -> None:
    """Moves what an earlier run left in `workdir` (all but lock files and earlier set-aside runs) into
    ``overwritten-<time>/``: nothing is deleted, and no old checkpoint is resumed under a new config."""
    entries = sorted(p for p in workdir.iterdir() if not p.name.startswith((".lock", "overwritten-")))
    if not entries:
        return
    aside = fresh_path(workdir / f"overwritten-{time.strftime('%Y%m%d-%H%M%S')}")
    aside.mkdir()
    for p in entries:
        p.rename(aside / p.name)
    logging.warning("--overwrite: moved the earlier run (%s) to %s; starting afresh",
                    ", ".join(p.name for p in entries), aside)


def fresh_path(base: Path) -> Path:
    """`base`, or else `base-2`, `base-3`, ...: the first that does not exist yet."""
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def write_file(path: Path, write: Callable[[Path], None]) -> None:
    """`atomic_write`, with a failure (disk full, ...) as one line naming the file, which keeps its earlier content."""
    try:
        atomic_write(path, write)
    except OSError as e:
        raise RunError(f"could not write {path} ({e.strerror or e}); its earlier content, if any, is kept") from None


def checkpoint_manager(workdir: Path, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def host_copy(tree: Any) -> Any:
    """Replicated (or single-device) arrays -> numpy, from this process's first copy."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def restore_latest(manager: ocp.CheckpointManager, like: Any, sharding: jax.sharding.Sharding) -> Any | None:
    """The newest checkpoint that restores and verifies, as arrays placed by `sharding`, structured
    like `like` (arrays or shape structs); None when there is none.

    A checkpoint that fails to restore (a truncated or missing file) or to verify (see `problem_with`)
    is skipped with a one-line warning that says why, for the one before it. When checkpoints exist
    but none is usable, the run stops rather than start afresh over them.
    """
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), like)
    steps = sorted(manager.all_steps(), reverse=True)
    problems = []
    for step in steps:
        # Each checkpoint is judged alone, by a manager of its own: orbax fixes a manager's item layout
        # from the first step it reads, so one broken step (its item folder gone) would fail every other.
        alone = ocp.CheckpointManager(manager.directory, options=ocp.CheckpointManagerOptions(read_only=True))
        try:
            state = alone.restore(step, args=ocp.args.StandardRestore(target))
            problem = problem_with(host_copy(state), step, alone.metadata(step).custom_metadata or {})
        except Exception as e:  # whatever fails to read, the next checkpoint may not
            problem = f"it does not restore: {type(e).__name__}: {one_line(e)[:200]}"
        finally:
            alone.close()
        if problem is None:
            return state
        logging.warning("skipping the checkpoint of step %d in %s: %s", step, manager.directory, problem)
        problems.append(problem)
    if steps:
        # Where warnings are hidden (predict, score_photos), the line itself says why, for the newest one.
        why = "see the warnings above" if logging.level_warning() else f"the newest: {problems[0][:160]}"
        raise RunError(f"no checkpoint in {manager.directory} is usable (steps {', '.join(map(str, steps))}; "
                       f"{why}): move them aside, or start afresh with --overwrite")
    return None


def resume(manager: ocp.CheckpointManager, host_state: Any, par: Any, workdir: Path) -> Any:
    """The host state a run starts from: its latest usable checkpoint's (`restore_latest`, placed as
    `par` (a `parallel.DataParallel`) replicates it; newer unusable ones set aside), else `host_state`."""
    restored = restore_latest(manager, host_state, par.replicated)
    if restored is None:
        return host_state
    host_state = par.to_host(restored)
    set_aside_newer(manager, int(host_state.step), workdir)
    logging.info("Resumed from step %d", host_state.step)
    return host_state


def problem_with(state: Any, step: int, metadata: dict[str, Any]) -> str | None:
    """Why the `state` read from the checkpoint of `step` cannot be trusted (None: it can).

    It must hold that step, finite values only, and match the SHA-256 saved with it (checkpoints
    written before the digest existed have none): flipped bytes that still decode are caught too.
    """
    if int(state.step) != step:
        return f"it holds step {int(state.step)}"
    if not all_finite(state):
        return "it holds non-finite values"
    digest = metadata.get("state_sha256")
    if digest is not None and digest != tree_sha256(state):
        return "its data does not match the SHA-256 saved with it"
    return None


def all_finite(tree: Any) -> bool:
    """Whether every floating-point value in the numpy `tree` is finite."""
    return all(np.isfinite(x).all() for x in jax.tree.leaves(tree) if np.issubdtype(x.dtype, np.inexact))


def set_aside_newer(manager: ocp.CheckpointManager, step: int, workdir: Path) -> None:
    """Moves the checkpoints newer than the restored `step` (those that failed) into broken-checkpoints/,
    so the run can save those steps again; kept, not deleted, for a look at what went wrong."""
    newer = [s for s in manager.all_steps() if s > step]
    if not newer:
        return
    if jax.process_index() == 0:
        for s in newer:
            aside = fresh_path(workdir / "broken-checkpoints" / str(s))
            aside.parent.mkdir(exist_ok=True)
            (workdir / "checkpoints" / str(s)).rename(aside)
            logging.warning("moved the unusable checkpoint of step %d to %s", s, aside)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("svhn_jax:checkpoints-set-aside")
    manager.reload()


def save_checkpoint(manager: ocp.CheckpointManager, step: int, state: Any, workdir: Path) -> None:
    """Saves a checkpoint with the SHA-256 of its state; a failed write (disk full, ...) stops the run
    and keeps the earlier ones, and so does a state with non-finite values (never a "last good" one).

    Orbax writes into a temporary folder renamed into place on success, so a save interrupted by
    an error or a kill is never taken for a checkpoint.
    """
    last_good = manager.latest_step()
    kept = f"step {last_good}" if last_good is not None else "none yet"
    host = host_copy(state)
    if not all_finite(host):
        raise RunError(f"non-finite parameters at step {step}; stopped, the last good checkpoint ({kept}) "
                       f"is kept in {workdir / 'checkpoints'}")
    try:
        manager.save(step, args=ocp.args.StandardSave(state), custom_metadata={"state_sha256": tree_sha256(host)})
        manager.wait_until_finished()
    except Exception as e:  # any storage failure ends the run with one line
        reason = " ".join(str(e).split())[:300]
        raise RunError(f"could not write the checkpoint of step {step} ({type(e).__name__}: {reason}); "
                       f"the last complete checkpoint ({kept}) is kept in {workdir / 'checkpoints'}") from None


class MetricsLog:
    """metrics.jsonl + TensorBoard, written by process 0 only.

    Resuming from `resume_step` drops the records written after that checkpoint (the run writes
    them again), and the final evaluation's record when the run only redoes that evaluation
    (`resume_step` == `final_step`), so no (step, split) is logged twice.
    """

    def __init__(self, workdir: Path, resume_step: int, final_step: int):
        self.active = jax.process_index() == 0
        self.path = workdir / "metrics.jsonl"
        if not self.active:
            return
        if self.path.exists():
            def kept(record: dict[str, Any]) -> bool:
                redone = record["step"] == resume_step == final_step and record["split"] == "eval"
                return record["step"] <= resume_step and not redone
            lines = [line for line, record in read_metrics(self.path) if kept(record)]
            write_file(self.path, lambda p: p.write_text("".join(line + "\n" for line in lines)))
        self.tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        try:
            with self.path.open("a") as f:  # one write per line: a kill leaves at most a partial last line
                f.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
        except OSError as e:
            raise RunError(f"could not write {self.path} ({e.strerror or e}); the checkpoints are kept: "
                           "run the same command again once it can be written") from None
        for k, v in scalars.items():
            self.tb.add_scalar(f"{split}/{k}", v, step)
        self.tb.flush()

    def close(self) -> None:
        if self.active:
            self.tb.close()


def read_metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for each line of a metrics.jsonl. A partial last line (a run killed while writing
    it) is dropped with a warning; any other line that is not a record is an error naming the file."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            out.append((line, {"step": int(record["step"]), "split": record["split"]}))
        except (ValueError, KeyError, TypeError) as e:
            if i < len(lines):
                raise RunError(f"{path} line {i} is not a metrics record ({one_line(e)}); "
                               "fix or remove that line") from None
            logging.warning("%s: dropped its partial last line (%d characters), left by a run that was stopped "
                            "while writing it", path, len(line))
    return out


def tree_sha256(tree: Any) -> str:
    """SHA-256 over every leaf (path, dtype, shape, bytes) in sorted path order: of the parameters it
    is final_metrics.json's ``params_sha256``; of the whole state, a checkpoint's digest."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()

"""A directory of finished run results, written one file per run as runs finish."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


class CorruptResultError(ValueError):
    """A stored result file cannot be read back."""


def config_key(config: dict[str, Any]) -> str:
    """Return a short stable hash of a JSON-serialisable config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file private to its owner; results are for sharing.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    """Read a JSON result file, raising ``CorruptResultError`` naming the file."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise CorruptResultError(
            f"result file {path} is not valid JSON ({error}); "
            "delete it to rerun that run"
        ) from error


class ResultStore:
    """Results under ``root/runs/<experiment>/<key>.json``, one file per run.

    A run's key combines its experiment, config hash, seed and learner label, so a
    rerun with the same settings finds it and skips it, while changed settings get a
    new key. Each file is written atomically the moment its run finishes, so a killed
    sweep loses only the runs in progress.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.runs = self.root / "runs"

    def path(self, experiment: str, key: str) -> Path:
        return self.runs / experiment / f"{key}.json"

    def has(self, experiment: str, key: str) -> bool:
        return self.path(experiment, key).exists()

    def get(self, experiment: str, key: str) -> dict[str, Any]:
        return read_json(self.path(experiment, key))

    def put(self, experiment: str, key: str, record: dict[str, Any]) -> Path:
        path = self.path(experiment, key)
        write_json_atomic(path, record)
        return path

    def records(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Return every stored record (of one experiment), in file-name order."""
        if not self.runs.exists():
            return []
        folders = (
            [self.runs / experiment] if experiment else sorted(self.runs.iterdir())
        )
        out = []
        for folder in folders:
            if folder.is_dir():
                out.extend(read_json(p) for p in sorted(folder.glob("*.json")))
        return out

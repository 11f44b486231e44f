"""Where cyz reads its configuration and keeps its data (both movable by environment)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs


def config_dir() -> Path:
    """`CYZ_CONFIG_DIR`, else `./config` when it holds a sources file, else the packaged defaults."""
    env = os.environ.get("CYZ_CONFIG_DIR")
    if env:
        return Path(env)
    local = Path("config")
    if (local / "sources.yaml").is_file():
        return local
    return Path(str(resources.files("cyz.config")))


def pin_config_dir(path: Path) -> Path:
    """Make `path`, absolute, the config dir of this process and of every process it starts.

    The crawl child and its extraction workers resolve `config_dir()` themselves, from
    the environment and their working directory; pinned, they read the very files the
    main process has just validated, never another dir's."""
    path = Path(path).resolve()
    os.environ["CYZ_CONFIG_DIR"] = str(path)
    return path


def data_dir() -> Path:
    """`CYZ_DATA_DIR`, else the user data dir (e.g. ~/.local/share/cyz); created on first use."""
    env = os.environ.get("CYZ_DATA_DIR")
    path = Path(env) if env else Path(platformdirs.user_data_dir("cyz", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path

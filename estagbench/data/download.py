"""Downloading into the cache: stream to ``.part``, verify SHA-256, rename atomically.

Never disables TLS verification and never prompts.  Without network the error
names the file, the URL and where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import ChecksumError, DataNotFoundError

__all__ = ["default_data_dir", "resolve_data_dir", "download_file"]


def default_data_dir() -> Path:
    """``$ESTAGBENCH_DATA`` or ``~/.cache/estagbench``."""
    env = os.environ.get("ESTAGBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "estagbench"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``--data-dir`` if given, else :func:`default_data_dir`."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    timeout: float = 60.0,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Fetch ``url`` to ``dest``; verify ``sha256`` when given; atomic.

    ``check(path)``, when given, is called on the downloaded file before it replaces
    ``dest`` and raises if the content is not what was expected (e.g. an HTML error page).
    Raises :class:`DataNotFoundError` when the URL cannot be reached (naming the
    URL and ``dest``), :class:`ChecksumError` on a hash mismatch and whatever ``check``
    raises; in every case nothing is left at ``dest`` and an existing file there is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:  # noqa: S310
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise DataNotFoundError(
            f"could not download {url} ({type(exc).__name__}: {exc}). Without network, fetch the file elsewhere and "
            f"put it at {dest} (or point --data-dir / $ESTAGBENCH_DATA at a folder that has it)."
        ) from exc
    digest = h.hexdigest()
    if sha256 is not None and digest != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: downloaded file has SHA-256 {digest}, expected {sha256}; nothing was written to {dest}"
        )
    if check is not None:
        try:
            check(part)
        except Exception:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    return dest

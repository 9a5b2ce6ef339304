"""``estagbench site``: a self-contained static leaderboard site (HTML, CSS, a little JavaScript, figures, JSON).

Built from the committed leaderboards (``leaderboards/table*.csv`` and ``figures/``)
and, when given, a results store.  The output folder works from ``file://`` and from
any static host: every page links only to files inside it, and nothing is fetched
at view time (a Content-Security-Policy of ``'self'`` says so to the browser).

Typical use::

    from estagbench.site import build_site
    build_site("site", leaderboards="leaderboards")
"""

from typing import Any

from .cli import add_site_parser

__all__ = ["build_site", "add_site_parser"]


def __getattr__(name: str) -> Any:
    """``build_site`` is imported on first use: building the CLI parser must not load pandas and the registry."""
    if name == "build_site":
        from ._build import build_site

        return build_site
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

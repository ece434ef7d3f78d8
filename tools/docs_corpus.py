#!/usr/bin/env python3
"""Turns Markdown files into vdb documents: one per section (## or ### heading).

    python3 tools/docs_corpus.py docs > docs.jsonl

Each line: {"_id": "FILE#slug", "title": "heading", "text": "section body",
"metadata": {"file": "FILE", "section": "heading"}}. Used by the demo, so that the
demo's data is the project's own.
"""
import json
import pathlib
import re
import sys


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def sections(path):
    title, body, fenced = path.stem, [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced  # a '# comment' inside a code block is not a heading
        match = None if fenced else re.match(r"^#{1,3}\s+(.*)", line)
        if match:
            if "".join(body).strip():
                yield title, "\n".join(body).strip()
            title, body = match.group(1).strip(), []
        else:
            body.append(line)
    if "".join(body).strip():
        yield title, "\n".join(body).strip()


def main(root):
    seen = set()
    for path in sorted(pathlib.Path(root).glob("*.md")):
        for title, text in sections(path):
            key = f"{path.name}#{slug(title)}"
            n = 2
            while key in seen:
                key, n = f"{path.name}#{slug(title)}-{n}", n + 1
            seen.add(key)
            print(json.dumps({"_id": key, "title": title, "text": text,
                              "metadata": {"file": path.name, "section": title}}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")

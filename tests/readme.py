"""The README's shell commands, as a user would type them: the `sh` blocks, comments dropped, one command
per line, each with the section it is in. Standard library only: docker/container-test.sh runs it with
the system's python3 (`python3 -m tests.readme container` prints the container section's commands).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
CONTAINER_SECTION = "2. In a container"


@dataclass(frozen=True)
class Command:
    section: str  # the heading above it
    line: str  # the command, as typed (its comment dropped)


def _strip_comment(line: str) -> str:
    """The line without its trailing `# ...` comment (a # inside quotes stays)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands(text: str | None = None) -> list[Command]:
    text = README.read_text() if text is None else text
    out, section, block = [], "", None
    for raw in text.splitlines():
        if block is None:
            heading = re.match(r"#{2,4} (.+)", raw)
            if heading:
                section = heading.group(1)
            elif raw.strip() == "```sh":
                block = []
            continue
        if raw.strip() == "```":
            out.extend(Command(section, line) for line in block)
            block = None
            continue
        line = _strip_comment(raw)
        if line:
            block.append(line)
    return out


def main(argv: list[str]) -> int:
    if argv != ["container"]:
        print("usage: python3 -m tests.readme container", file=sys.stderr)
        return 2
    for c in commands():
        if c.section.startswith(CONTAINER_SECTION):
            print(c.line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

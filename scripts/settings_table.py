"""Rewrites the settings table in docs/configuration.md from the settings table in service/app/config.py.

python scripts/settings_table.py           # rewrite docs/configuration.md
python scripts/settings_table.py --check   # exit 1 if docs/configuration.md's table is stale
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

from service.app.config import options  # noqa: E402

HEADER = "| flag | environment | file key | default | meaning |"


def shown(default: object) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if default is dataclasses.MISSING or default in ((), {}, ""):
        return "none"
    return f"`{default}`"


def table() -> str:
    rows = [
        HEADER,
        "| --- | --- | --- | --- | --- |",
        "| `--config` | `CHATGATE_CONFIG` | | none | the TOML file below |",
    ]
    for name, opt, default in options():
        if opt.env is None and opt.file is None and opt.flag is None:
            continue
        env = "`CHATGATE_UPSTREAMS__NAME__KEY`" if name == "upstreams" else (f"`{opt.env}`" if opt.env else "")
        flag = f"`{opt.flag}`" if opt.flag else ""
        file = f"`{opt.file}`" if opt.file else ""
        rows.append(f"| {flag} | {env} | {file} | {shown(default)} | {opt.help} |")
    return "\n".join(rows)


def rewritten(page: str) -> str:
    start = page.index(HEADER)
    end = page.index("\n\n", start)
    return page[:start] + table() + page[end:]


def main(argv: list[str]) -> int:
    path = ROOT / "docs/configuration.md"
    current = path.read_text()
    fresh = rewritten(current)
    if "--check" in argv:
        if fresh != current:
            print("docs/configuration.md's settings table is stale: run python scripts/settings_table.py")
            return 1
        return 0
    path.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

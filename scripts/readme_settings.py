import re
from service.config import options
rows = ["| flag | environment | file key | default | meaning |", "| --- | --- | --- | --- | --- |",
        "| `--config` | `CHATGATE_CONFIG` | | none | the TOML file below |"]
for name, opt, default in options():
    if opt.env is None and opt.file is None and opt.flag is None:
        continue
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif default in ((), {}, ""):
        shown = "none"
    else:
        shown = f"`{default}`"
    env = "`CHATGATE_UPSTREAMS__NAME__KEY`" if name == "upstreams" else (f"`{opt.env}`" if opt.env else "")
    rows.append(f"| {f'`{opt.flag}`' if opt.flag else ''} | {env} | {f'`{opt.file}`' if opt.file else ''} | {shown} | {opt.help} |")
text = open("README.md").read()
start = text.index("| flag | environment | file key |")
end = text.index("\n\n", start)
text = text[:start] + "\n".join(rows) + text[end:]
open("README.md", "w").write(text)

"""Maintainers: re-inline vega 5, vega-lite 5 and vega-embed 6 from the npm registry into offline.html.

The libraries are committed inside the template (one copy, about 0.8 MB) because users' machines
have Python but not necessarily npm or network; this script needs npm. Usage:
    python plots_template/update_libraries.py [vega@5 vega-lite@5 vega-embed@6]
It replaces the body and the version, file and sha256 attributes of each
<script data-library="NAME" ...> block and copies each package's LICENSE next to the template
(vega's npm package ships none: its LICENSE-vega.txt is vega/vega's on GitHub, kept as is).
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "offline.html"
SPECS = ["vega@5", "vega-lite@5", "vega-embed@6"]
MAX_BYTES = 2_000_000
# Text DVC substitutes in the template, and the end of a script element: neither may occur in the code.
FORBIDDEN = ["</script", "{scripts}", "{plot_divs}", "{refresh_tag}"]


def script_block(name: str) -> re.Pattern:
    """The <script data-library="name" ...>code</script> block of one library."""
    return re.compile(rf'<script data-library="{re.escape(name)}"[^>]*>\n.*?</script>', re.DOTALL)


def fetch(spec: str, folder: Path) -> tuple[str, str, str, bytes, bytes | None]:
    """`npm pack` one package; return its name, version, minified file path, code and LICENSE (None if absent)."""
    packed = json.loads(subprocess.run(["npm", "pack", spec, "--json"], cwd=folder, check=True,
                                       capture_output=True, text=True).stdout)[0]
    with tarfile.open(folder / packed["filename"]) as tar:
        manifest = json.load(tar.extractfile("package/package.json"))
        minified = manifest["jsdelivr"]  # the UMD browser build the CDN serves, e.g. build/vega.min.js
        code = tar.extractfile(f"package/{minified}").read()
        names = tar.getnames()
        licence = tar.extractfile("package/LICENSE").read() if "package/LICENSE" in names else None
    return packed["name"], packed["version"], minified, code, licence


def main(specs: list[str]) -> None:
    template = TEMPLATE.read_text(encoding="utf8")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            name, version, minified, code, licence = fetch(spec, Path(tmp))
            text = code.decode("utf8")
            if len(code) > MAX_BYTES or any(bad in text for bad in FORBIDDEN):
                sys.exit(f"{name}@{version} {minified}: over {MAX_BYTES} bytes or holds one of {FORBIDDEN}")
            block = (f'<script data-library="{name}" data-version="{version}" data-file="{minified}" '
                     f'data-sha256="{hashlib.sha256(code).hexdigest()}">\n{text}\n</script>')
            template, found = script_block(name).subn(lambda _: block, template)
            if found != 1:
                sys.exit(f"{TEMPLATE}: expected one <script data-library=\"{name}\"> block, found {found}")
            if licence is not None:
                (HERE / f"LICENSE-{name}.txt").write_bytes(licence)
            elif not (HERE / f"LICENSE-{name}.txt").is_file():
                sys.exit(f"{name}@{version} ships no LICENSE: add LICENSE-{name}.txt from its repository")
            print(f"{name}@{version} {minified}: {len(code)} bytes")
    TEMPLATE.write_text(template, encoding="utf8")


if __name__ == "__main__":
    main(sys.argv[1:] or SPECS)

"""Audit the installed Python packages against PyPI's advisory data (the data pip-audit reads), stdlib only.

    python scripts/audit.py [--require gradio,starlette,...] [--index https://pypi.org]

For each installed distribution (local labels such as torch's `+cpu` stripped) it asks PyPI's JSON API for the
advisories of that exact release (`/pypi/<name>/<version>/json`). Where only the project's page is served
(`/pypi/<name>/json`, as on mirrors that do not serve per-release pages) the installed release is audited when
it is the latest one, whose advisories that page lists; an older release is reported as not audited.

Exit status: 1 when any installed release has a known, not withdrawn advisory; 2 when a package named in
--require could not be audited (an unreachable service must not read as "no known vulnerabilities");
0 otherwise. Prints a Markdown table of what it found and the list of what it could not audit.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata

TIMEOUT_SECONDS = 15
# What faces the network in the app (the web server and its HTTP stack) or parses what users send. Pillow is
# not here: gradio 6.31 pins pillow<13, and the newest 12.x cannot be audited where only latest pages are served.
DEFAULT_REQUIRED = (
    "gradio,gradio-client,fastapi,starlette,uvicorn,httpx,huggingface-hub,jinja2,python-multipart,orjson,"
    "pydantic,safetensors,diffusers,urllib3,requests"
)


@dataclass(frozen=True)
class Finding:
    """One installed release: its advisories (ids), or why it could not be audited (`error`)."""

    name: str
    version: str
    advisories: tuple[str, ...] = ()
    error: str = ""

    @property
    def audited(self) -> bool:
        return not self.error


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """{normalised name: public version} of every installed distribution."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonical(name)] = dist.version.split("+", 1)[0]
    return found


def _get_json(url: str) -> dict | None:
    """The JSON at `url`, or None on 404; other failures raise."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def _live(vulnerabilities: list[dict]) -> tuple[str, ...]:
    return tuple(
        f"{v.get('id')} (fixed in {', '.join(v.get('fixed_in') or []) or '—'})"
        for v in vulnerabilities
        if not v.get("withdrawn")
    )


def audit(name: str, version: str, index: str) -> Finding:
    """The advisories PyPI lists for release `version` of project `name`."""
    try:
        release = _get_json(f"{index}/pypi/{name}/{version}/json")
        if release is not None:
            return Finding(name, version, _live(release.get("vulnerabilities") or []))
        project = _get_json(f"{index}/pypi/{name}/json")
        if project is None:
            return Finding(name, version, error="not on the index (a local or private package)")
        latest = project.get("info", {}).get("version")
        if latest == version:
            return Finding(name, version, _live(project.get("vulnerabilities") or []))
        return Finding(name, version, error=f"release page not served; latest is {latest}")
    except (OSError, ValueError) as error:  # URLError, timeouts, bad JSON
        return Finding(name, version, error=f"{type(error).__name__}: {error}"[:120])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="https://pypi.org", help="a PyPI JSON API root (https)")
    parser.add_argument("--require", default=DEFAULT_REQUIRED, help="comma-separated packages that must be audited")
    args = parser.parse_args(argv)
    if not args.index.startswith("https://"):
        parser.error("--index must be an https URL")
    packages = installed()
    with ThreadPoolExecutor(max_workers=8) as pool:
        findings = sorted(
            pool.map(lambda item: audit(*item, args.index.rstrip("/")), packages.items()), key=lambda f: f.name
        )
    vulnerable = [f for f in findings if f.advisories]
    unaudited = [f for f in findings if not f.audited]
    required = {canonical(n) for n in args.require.split(",") if n.strip()}
    missing = sorted(required & {f.name for f in unaudited})
    print(f"Audited {len(findings) - len(unaudited)} of {len(findings)} installed packages against {args.index}.\n")
    print("| package | version | known advisories |\n|---|---|---|")
    for finding in vulnerable or []:
        print(f"| {finding.name} | {finding.version} | {'; '.join(finding.advisories)} |")
    if not vulnerable:
        print("| (none) | | |")
    if unaudited:
        print("\nNot audited:")
        for finding in unaudited:
            print(f"- {finding.name} {finding.version}: {finding.error}")
    if vulnerable:
        print(f"\nFAIL: {len(vulnerable)} installed release(s) with known advisories.")
        return 1
    if missing:
        print(f"\nFAIL: required packages not audited: {', '.join(missing)}.")
        return 2
    print("\nOK: no known advisories; every required package was audited.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

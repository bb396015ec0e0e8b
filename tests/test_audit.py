"""scripts/audit.py's decisions, on canned PyPI answers (the real service is never reached from tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "audit.py"
spec = importlib.util.spec_from_file_location("audit", SCRIPT)
audit = importlib.util.module_from_spec(spec)
sys.modules["audit"] = audit  # dataclasses look their module up there
spec.loader.exec_module(audit)

ADVISORY = {"id": "PYSEC-2099-1", "fixed_in": ["2.0"], "withdrawn": None}
WITHDRAWN = {"id": "PYSEC-2099-2", "fixed_in": ["2.0"], "withdrawn": "2099-01-01"}


@pytest.fixture
def pypi(monkeypatch):
    """Installed packages and the JSON pages the fake index serves, by URL path."""
    pages: dict[str, dict] = {}
    packages: dict[str, str] = {}
    monkeypatch.setattr(audit, "installed", lambda: dict(packages))

    def get_json(url: str):
        path = url.removeprefix("https://pypi.test")
        if path == "/pypi/down/json" or path.startswith("/pypi/down/"):
            raise OSError("network is unreachable")
        return pages.get(path)

    monkeypatch.setattr(audit, "_get_json", get_json)
    return pages, packages


def run(*argv: str) -> int:
    return audit.main(["--index", "https://pypi.test", *argv])


def test_a_release_with_an_advisory_fails(pypi, capsys):
    pages, packages = pypi
    packages.update({"web": "1.0", "calm": "3.0"})
    pages["/pypi/web/1.0/json"] = {"vulnerabilities": [ADVISORY, WITHDRAWN]}
    pages["/pypi/calm/3.0/json"] = {"vulnerabilities": [WITHDRAWN]}
    assert run("--require", "web") == 1
    out = capsys.readouterr().out
    assert "PYSEC-2099-1 (fixed in 2.0)" in out and "PYSEC-2099-2" not in out and "| calm |" not in out


def test_the_latest_release_is_audited_from_the_project_page(pypi, capsys):
    pages, packages = pypi
    packages.update({"web": "2.0"})
    pages["/pypi/web/json"] = {"info": {"version": "2.0"}, "vulnerabilities": []}
    assert run("--require", "web") == 0
    assert "Audited 1 of 1" in capsys.readouterr().out


def test_an_older_release_without_its_page_is_not_audited(pypi, capsys):
    pages, packages = pypi
    packages.update({"web": "1.0", "other": "1.0"})
    pages["/pypi/web/json"] = {"info": {"version": "2.0"}, "vulnerabilities": [ADVISORY]}
    pages["/pypi/other/1.0/json"] = {"vulnerabilities": []}
    assert run("--require", "other") == 0  # reported, but not a required package
    assert "web 1.0: release page not served; latest is 2.0" in capsys.readouterr().out
    assert run("--require", "web,other") == 2


def test_an_unreachable_service_never_reads_as_clean(pypi, capsys):
    _pages, packages = pypi
    packages.update({"down": "1.0"})
    assert run("--require", "down") == 2
    assert "OSError: network is unreachable" in capsys.readouterr().out


def test_only_https_indexes():
    with pytest.raises(SystemExit):
        audit.main(["--index", "http://pypi.test"])

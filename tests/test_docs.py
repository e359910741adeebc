"""The documentation: the MkDocs site builds with --strict and holds every page of its nav, a broken link or a page
left out of the nav fails that build, README.md stays short and its links resolve, and no tracked text file
refers outside the repository or to a tracker's issue number."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".html", ".ini", ".txt"}
# Names of what lives outside the repository (written so that this file does not match them itself).
OUTSIDE_NAMES = re.compile(r"DESIGN\.md|shared/seed[s]")
# A relative path that starts by climbing out of the folder it is written in (not a ".." inside a path or URL).
CLIMBING_PATH = re.compile(r"(?<![\w/.%])(?:\.\./)+[^\s)\"'`>\]]*")
ISSUE_NUMBER = re.compile(r"\bissues? #?\d", re.IGNORECASE)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def build_site(config_dir: Path, site_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                          cwd=config_dir, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def nav_pages(nav: list) -> list[str]:
    """The Markdown files a MkDocs nav names, in order."""
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def built_page(site: Path, page: str) -> Path:
    """Where MkDocs writes a page with directory URLs: index.md and a/index.md as such, a/b.md as a/b/index.html."""
    stem = page.removesuffix(".md")
    return site / (f"{stem}.html" if stem == "index" or stem.endswith("/index") else f"{stem}/index.html")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    return [ROOT / name for name in names
            if name and (Path(name).suffix in TEXT_SUFFIXES or Path(name).name == "Makefile")]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    site_dir = tmp_path_factory.mktemp("site")
    return build_site(ROOT, site_dir), site_dir


def test_the_site_builds_strictly_with_every_page_of_its_nav(site):
    result, site_dir = site
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING" not in result.stderr
    pages = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert {"index.md", "getting_started.md", "training.md", "models/index.md", "models/vae.md", "datasets.md",
            "search.md", "star_fields.md", "benchmarks.md", "guarantees.md", "architecture.md", "background.md",
            "results/index.md"} <= set(pages)
    assert sorted(pages) == sorted(str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md"))
    for page in pages:
        assert built_page(site_dir, page).is_file(), page
    architecture = built_page(site_dir, "architecture.md").read_text()
    assert "core → datasets → zoo → training → search → evaluation → CLIs" in architecture
    home = built_page(site_dir, "index.md")
    pictures = re.findall(r'<img[^>]* src="([^"]+\.png)"', home.read_text())
    assert pictures == ["preset_encoder_milky_way_neighbours.png"]
    assert (home.parent / pictures[0]).stat().st_size > 10_000


def test_a_broken_link_or_a_page_outside_the_nav_fails_the_build(tmp_path):
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / "training.md").open("a") as page:
        page.write("\nSee [the old page](gone.md) and [a missing section](architecture.md#no-such-section).\n")
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n")
    result = build_site(tmp_path, tmp_path / "site")
    assert result.returncode == 1
    assert "Aborted with 3 warnings in strict mode" in result.stdout
    assert "contains a link 'gone.md', but the target is not found" in result.stderr
    assert "does not contain an anchor '#no-such-section'" in result.stderr
    assert "- orphan.md" in result.stderr


def test_the_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    links = [link for link in MARKDOWN_LINK.findall(readme) if "://" not in link]
    assert "docs/architecture.md" in links and "docs/getting_started.md" in links
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert missing == []


def test_no_tracked_file_refers_outside_the_repository():
    found = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            climbing = [match for match in CLIMBING_PATH.findall(line)
                        if not (path.parent / match).resolve().is_relative_to(ROOT)]
            if OUTSIDE_NAMES.search(line) or climbing:
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []


def test_no_tracked_file_names_an_issue_number():
    found = [f"{path.relative_to(ROOT)}:{number}" for path in tracked_text_files()
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if ISSUE_NUMBER.search(line)]
    assert found == []

"""Reports in a real browser: Debian's chromium (debian-packages.txt) driven by Playwright.

For each report: it loads with no console error, no page error and no failed request;
every image has a natural width; every audio element has a duration; a sortable table
sorts when its header is clicked; a sample text holding ``<script>`` is shown, not run.
The default suite covers the default view (hand-made files of every kind), toy, text and
the third-party waves example; ``-m slow`` runs every first-party plugin and the gallery.
With CONDGEN_REPORT_SCREENSHOTS=DIR the slow test saves a screenshot of each report
there (docs/img/report/ holds the ones docs/reports.md shows).

Skipped, with the reason, where Playwright or chromium cannot start.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from condgen.cli import main

from test_report import GIF, make_run, png_bytes, write_wav

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
WAVES = ROOT / "examples" / "third_party" / "condgen-waves"
EVIL = "<script>window.pwned=1</script>"
FIRST_PARTY = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}); make setup installs it")
    executable = os.environ.get("CONDGEN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on PATH (Debian package chromium, in debian-packages.txt; or set CONDGEN_CHROMIUM)")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=executable, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
    except Exception as exc:
        manager.stop()
        pytest.skip(f"chromium at {executable} cannot start: {str(exc).splitlines()[0]}")
    yield chromium
    chromium.close()
    manager.stop()


def check_report(browser, path: Path, screenshot: Path | None = None) -> dict:
    """Open ``path`` and assert what every report must hold; returns what was seen."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url} {request.failure}"))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        # every audio element loads its metadata (a duration) or fails, within the time limit
        page.wait_for_function("Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)", timeout=15_000)
        seen = page.evaluate("""() => ({
            images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]),
            audio: Array.from(document.querySelectorAll('audio')).map(a => [a.getAttribute('src'), a.duration, a.error && a.error.code]),
            videos: document.querySelectorAll('video').length,
            meshes: document.querySelectorAll('.mesh .main-svg, .mesh canvas').length,
            sortable: document.querySelectorAll('table.sortable').length,
            pwned: window.pwned === undefined ? null : window.pwned,
        })""")
        assert not problems, f"{path}: {problems}"
        assert all(url.startswith(("file:", "data:")) for url in requests), f"{path} fetched from the network: {requests}"
        broken = [src for src, complete, width in seen["images"] if not complete or width == 0]
        assert not broken, f"{path}: images with no natural width: {broken}"
        silent = [(src, duration, error) for src, duration, error in seen["audio"] if not (duration and duration > 0)]
        assert not silent, f"{path}: audio without a duration: {silent}"
        assert seen["pwned"] is None, f"{path}: a script from a sample ran"
        if seen["sortable"]:
            check_sorting(page)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            height = page.evaluate("document.documentElement.scrollHeight")
            page.screenshot(path=str(screenshot), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": min(height, 1600)})
            from PIL import Image  # 128 colours: a third of the bytes for docs/img/report

            Image.open(screenshot).convert("RGB").quantize(colors=128).save(screenshot, optimize=True)
        return seen
    finally:
        page.close()


def check_sorting(page) -> None:
    """Click the header of the first sortable table with two or more distinct values in a
    column; the column must read ascending, then descending after a second click."""
    column = page.evaluate("""() => {
        const tables = Array.from(document.querySelectorAll('table.sortable'));
        for (let t = 0; t < tables.length; t++) {
            const rows = Array.from(tables[t].tBodies[0].rows);
            const width = tables[t].tHead.rows[0].cells.length;
            for (let c = width - 1; c >= 0; c--) {  // a column of numbers, else of text
                const values = rows.map(r => r.cells[c] ? r.cells[c].textContent.trim() : '');
                if (rows.length > 1 && new Set(values).size > 1 && values.every(v => v !== '' && !isNaN(Number(v)))) return [t, c];
            }
            for (let c = width - 1; c >= 0; c--) {
                const values = rows.map(r => r.cells[c] ? r.cells[c].textContent.trim() : '');
                if (rows.length > 1 && new Set(values).size > 1) return [t, c];
            }
        }
        return null;
    }""")
    if column is None:
        return
    table, index = column
    header = page.locator("table.sortable").nth(table).locator("thead th").nth(index)

    def values():
        return page.evaluate(f"""() => Array.from(document.querySelectorAll('table.sortable')[{table}].tBodies[0].rows)
                                   .map(r => r.cells[{index}].textContent.trim())""")

    def key(text):
        try:
            return (0, float(text), "")
        except ValueError:
            return (1, 0.0, text.casefold())  # text: the browser's locale order, case aside

    header.click()
    ascending = values()
    assert header.get_attribute("aria-sort") == "ascending"
    assert [key(v) for v in ascending] == sorted(key(v) for v in ascending), ascending
    header.click()
    descending = values()
    assert [key(v) for v in descending] == sorted((key(v) for v in descending), reverse=True), descending
    assert sorted(ascending) == sorted(descending) and ascending != descending


def core_ok(*args) -> str:
    """``core ARGS`` in process; its last line of output (the path it printed)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    assert code == 0, f"core {' '.join(map(str, args))} failed: {err.getvalue()[-3000:]}"
    return out.getvalue().strip().splitlines()[-1]


def install_waves(site: Path, monkeypatch) -> None:
    """The example third-party plugin, importable from its sources as if pip-installed."""
    dist = site / "condgen_waves-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: condgen-waves\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[condgen]\nwaves = condgen_waves.plugin\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(WAVES / "src"))
    for name in [m for m in sys.modules if m.startswith("condgen_waves")]:
        del sys.modules[name]
    from condgen import plugins

    plugins.reset()


# -- the default suite -----------------------------------------------------------------------


def test_the_default_view_works_in_the_browser(browser, tmp_path):
    wav = tmp_path / "clip.wav"
    write_wav(wav)
    run = make_run(tmp_path / "run", n=3, files={"png": lambda i: png_bytes(4 + i, 3), "gif": GIF, "wav": wav, "npy": b"\x93NUMPY",
                                               "csv": lambda i: f"a,b\n{i},{3 - i}\n".encode(), "txt": EVIL.encode()},
                   conditions={"label": [EVIL, "b"]})
    (run / "samples.csv").write_text("index,a,b\n0,10,3\n1,2,2\n2,30,1\n")
    manifest = (run / "manifest.json").read_text().replace('"files": []', '"files": ["samples.csv"]')
    (run / "manifest.json").write_text(manifest)
    seen = check_report(browser, Path(core_ok("show", run)))
    assert len(seen["images"]) == 6 and len(seen["audio"]) == 3 and seen["sortable"] == 1


def test_toy_text_and_waves_reports_and_their_gallery(browser, tmp_path, monkeypatch):
    """A first-party plugin with the default view (toy), one with its own parts and a prompt
    holding a script (text), a third-party plugin (waves), side by side and in a gallery."""
    install_waves(tmp_path / "site", monkeypatch)
    runs = tmp_path / "runs"
    core_ok("generate", "--plugin", "toy", "-n", 6, "-c", "component=north,east", "--steps", 8, "--out", runs / "toy-ddim")
    core_ok("generate", "--plugin", "toy", "-n", 6, "-c", "component=north,east", "--steps", 8, "--sampler", "euler", "--guidance", "cfg=2", "--out", runs / "toy-euler")
    core_ok("generate", "--plugin", "text", "-n", 2, "--steps", 6, "--prompt", EVIL, "--out", runs / "text")
    core_ok("generate", "--plugin", "waves", "-n", 6, "-c", "shape=sine,square,sawtooth", "--steps", 8, "--out", runs / "waves")
    for name in ("toy-ddim", "text", "waves"):
        check_report(browser, Path(core_ok("show", runs / name)))
    text = (runs / "text" / "report.html").read_text()
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in text and EVIL not in text
    assert "<h3>Waves</h3>" in (runs / "waves" / "report.html").read_text()
    check_report(browser, Path(core_ok("show", runs / "toy-ddim", runs / "toy-euler")))
    seen = check_report(browser, Path(core_ok("gallery", runs)))
    assert len(seen["images"]) == 3  # thumbnails: the toy runs' scatter plots and waves.png (text has no picture)


# -- every first-party plugin (slow) -----------------------------------------------------------


@pytest.mark.slow
def test_every_first_party_plugin_report_in_the_browser(browser, tmp_path):
    shots = os.environ.get("CONDGEN_REPORT_SCREENSHOTS")
    runs = tmp_path / "runs"
    for plugin in FIRST_PARTY:
        core_ok("generate", "--plugin", plugin, "-n", 3, "--steps", 4, "--out", runs / plugin)
        report = Path(core_ok("show", runs / plugin))
        seen = check_report(browser, report, Path(shots) / f"{plugin}.png" if shots else None)
        html = report.read_text()
        assert "default view is shown" not in html, f"{plugin}: its own report failed"
        if plugin == "audio":
            assert len(seen["audio"]) == 3
        if plugin == "shapes":
            assert seen["meshes"] >= 3, "the interactive meshes did not draw"
        if plugin == "molecules":
            assert sum(src.endswith(".svg") for src, *_ in seen["images"]) >= 1
    seen = check_report(browser, Path(core_ok("gallery", runs)), Path(shots) / "gallery.png" if shots else None)
    assert len(seen["images"]) >= len(FIRST_PARTY) - 1

"""`core show` and `core gallery`: what a report holds, how runs line up side by side, the
default view by file extension, escaping, plugins' own parts and bad input. No browser
here (tests/test_report_browser.py drives chromium); run directories are made by hand
where that is enough, by `core generate` where a plugin's code is the point."""

from __future__ import annotations

import json
import re
import struct
import wave
import zlib
from pathlib import Path

from condgen.testing import assert_one_line_error

import condgen

ROOT = Path(__file__).resolve().parents[1]


# -- hand-made run directories -------------------------------------------------------------


def png_bytes(width=4, height=3, rgb=(200, 30, 30)) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


GIF = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b")


def write_wav(path: Path, seconds=0.25, rate=8000) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(b"".join(struct.pack("<h", int(8000 * ((i // 20) % 2 * 2 - 1))) for i in range(int(seconds * rate))))


def make_run(path: Path, n=2, *, plugin="nowhere", generator="nowhere", status="complete", files=None, conditions=None,
             completed=None, version=None, extra=None) -> Path:
    """A run directory as `core generate` writes it: samples/NNNNNN.<ext> and manifest.json.
    ``files`` maps an extension to the bytes (or a function of the index) of each sample's file."""
    files = files or {"txt": lambda i: f"sample {i}".encode()}
    conditions = conditions or {"label": ["a", "b"]}
    (path / "samples").mkdir(parents=True)
    first = next(iter(files))
    for i in range(n if completed is None else completed):
        for ext, content in files.items():
            data = content(i) if callable(content) else content
            target = path / "samples" / f"{i:06d}.{ext}"
            if isinstance(data, Path):
                target.write_bytes(data.read_bytes())
            else:
                target.write_bytes(data)
    request = {"plugin": plugin, "generator": generator, "n": n, "conditions": conditions, "sampler": "ddim", "steps": 8, "sampler_options": {},
               "guidance": [], "seed": 0, "format": first, "weights_sha256": "ab" * 32}
    manifest = {"condgen_version": version or condgen.__version__, "plugin": plugin, "plugin_version": "0.1.0", "generator": generator, "model_kind": "denoiser",
                "request": request, "weights": {"source": "w.safetensors", "sha256": "ab" * 32}, "sampler": {"name": "ddim", "steps": 8, "options": {}},
                "guidance": [], "seed": 0, "device": "cpu", "dtype": "float32", "n": n, "status": status, "completed": n if completed is None else completed,
                "timings": {"total_s": 1.5}, "files": []}
    if status == "complete":
        manifest["samples"] = [{"index": i, "file": f"samples/{i:06d}.{first}", "condition": {k: v[i % len(v)] for k, v in conditions.items()}} for i in range(n)]
    manifest.update(extra or {})
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path


def links(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


# -- the default view ----------------------------------------------------------------------


def test_the_default_view_shows_each_file_by_its_extension(tmp_path, core):
    """What a plugin that supplies nothing gets, e.g. a video plugin writing .gif, .mp4 and
    .npy per sample: pictures, players, tables, text and links, all by relative links."""
    wav = tmp_path / "clip.wav"
    write_wav(wav)
    run = make_run(tmp_path / "run", files={"npy": b"\x93NUMPY", "gif": GIF, "png": png_bytes(), "mp4": b"\x00" * 32, "wav": wav,
                                          "csv": lambda i: f"x,y\n{i},{i * 2.5}\n".encode(), "txt": lambda i: f"text of {i}".encode()})
    (run / "preview.png").write_bytes(png_bytes(8, 8))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"] = ["preview.png"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = core("show", run)
    assert code == 0, err
    report = Path(out.strip())
    assert report == run / "report.html"
    html = report.read_text()
    for i in range(2):
        assert f'<img class="sample" src="samples/{i:06d}.gif"' in html and f'<img class="sample" src="samples/{i:06d}.png"' in html
        assert f'<video src="samples/{i:06d}.mp4"' in html and f'<audio src="samples/{i:06d}.wav"' in html
        assert f'<a href="samples/{i:06d}.npy">{i:06d}.npy</a>' in html
        assert f"text of {i}</pre>" in html
    assert "<th>y</th><td>2.5</td>" in html  # a one-row CSV sample as its values
    assert '<img class="file" src="preview.png"' in html
    assert all(not link.startswith(("/", "file:", "http")) for link in links(html)), links(html)
    for field in ("ab" * 32, "ddim", "seed", "cpu float32", "label=a,b"):
        assert field in html


def test_values_are_escaped_in_samples_conditions_and_manifest(tmp_path, core):
    evil = "<script>window.pwned=1</script>"
    run = make_run(tmp_path / "run", conditions={"prompt": [evil]}, files={"txt": evil.encode()}, generator="g<i>x")
    code, out, err = core("show", run)
    assert code == 0, err
    html = Path(out.strip()).read_text()
    assert "window.pwned" in html and evil not in html and "<i>x" not in html and "g&lt;i&gt;x" in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


def test_a_report_can_be_moved_with_its_run(tmp_path, core):
    run = make_run(tmp_path / "a" / "run", files={"png": png_bytes()})
    assert core("show", run)[0] == 0
    moved = (tmp_path / "a").rename(tmp_path / "elsewhere")
    html = (moved / "run" / "report.html").read_text()
    assert all((moved / "run" / link).is_file() for link in links(html) if not link.startswith(("#", "data:")))


# -- several runs side by side ---------------------------------------------------------------


def test_several_runs_line_up_by_condition(tmp_path, core):
    """The k-th sample with a condition of each run share a row, whatever their indices."""
    one = make_run(tmp_path / "one", n=4, conditions={"label": ["a", "b"]}, files={"txt": lambda i: f"one-{i}".encode()})
    two = make_run(tmp_path / "two", n=3, conditions={"label": ["b", "a", "a"]}, files={"txt": lambda i: f"two-{i}".encode()})
    code, out, err = core("show", one, two)
    assert code == 0, err
    report = Path(out.strip())
    assert report == tmp_path / "compare.html"
    body = report.read_text().split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td><div class=\"cond\">(.*?)</div></td>(.*?)</tr>", body, re.S)
    shown = [(re.sub("<[^>]+>", "", cond), re.findall(r"(one-\d|two-\d)</pre>", cells)) for cond, cells in rows]
    assert shown == [("label=a", ["one-0", "two-1"]), ("label=b", ["one-1", "two-0"]), ("label=a", ["one-2", "two-2"]), ("label=b", ["one-3"])]
    assert all(not link.startswith(("/", "file:")) for link in links(report.read_text()))


# -- bad input and partial runs ----------------------------------------------------------------


def test_not_a_run_directory_is_one_line(tmp_path, core):
    code, _, err = core("show", tmp_path)
    assert_one_line_error(code, err, f"{tmp_path} is not a run directory (no manifest.json)")
    code, _, err = core("show", tmp_path / "missing")
    assert_one_line_error(code, err, "is not a run directory (no such folder)")
    (tmp_path / "manifest.json").write_text("{not json")
    code, _, err = core("show", tmp_path)
    assert_one_line_error(code, err, "it is not a condgen run manifest")
    assert not (tmp_path / "report.html").exists()


def test_a_manifest_from_a_newer_condgen_is_refused(tmp_path, core):
    run = make_run(tmp_path / "run", version="99.0.0")
    code, _, err = core("show", run)
    assert_one_line_error(code, err, "written by condgen 99.0.0, newer than this condgen", "upgrade condgen")
    assert not (run / "report.html").exists()


def test_missing_sample_files_are_refused(tmp_path, core):
    run = make_run(tmp_path / "run", n=3)
    (run / "samples" / "000001.txt").unlink()
    code, _, err = core("show", run)
    assert_one_line_error(code, err, "1 of 3 sample files are missing (samples/000001.txt)", f"core generate --resume --out {run}")


def test_a_partial_run_is_reported_as_partial_with_its_resume_command(tmp_path, core):
    run = make_run(tmp_path / "run", n=6, completed=2, status="interrupted", conditions={"label": ["a", "b", "c"]})
    code, out, err = core("show", run)
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert 'data-status="interrupted"' in html and "partial run</b>, 2 of 6 samples" in html
    assert f"core generate --resume --out {run}" in html
    assert html.count('class="card sample"') == 2 and "<b>label</b>=b" in html  # conditions of the files present, cycled as -c does


def test_show_needs_a_run_and_gallery_a_folder_of_runs(tmp_path, core):
    code, _, err = core("show")
    assert code != 0 and "Missing argument" in err
    code, _, err = core("gallery", tmp_path)
    assert_one_line_error(code, err, f"no run directories under {tmp_path}")


# -- the gallery -----------------------------------------------------------------------------


def test_gallery_has_a_card_per_run_and_names_the_runs_left_out(tmp_path, core):
    make_run(tmp_path / "runs" / "first", files={"png": png_bytes()})
    make_run(tmp_path / "runs" / "nested" / "second", n=3, completed=1, status="failed")
    make_run(tmp_path / "runs" / "broken", version="99.0")
    code, out, err = core("gallery", tmp_path / "runs")
    assert code == 0, err
    assert err.count("warning: left out:") == 1 and "broken was written by condgen 99.0" in err
    index = Path(out.strip())
    html = index.read_text()
    assert index == tmp_path / "runs" / "index.html"
    assert html.count('class="card run"') == 3
    assert 'href="first/report.html"' in html and 'href="nested/second/report.html"' in html
    assert '<img src="first/samples/000000.png"' in html and "failed 1/3" in html
    assert (tmp_path / "runs" / "first" / "report.html").is_file() and (tmp_path / "runs" / "nested" / "second" / "report.html").is_file()


# -- plugins' own parts ------------------------------------------------------------------------


def _reports_example() -> str:
    doc = (ROOT / "docs" / "plugin-authors.md").read_text()
    return re.findall(r"```python\n(.*?)```", doc.split("### Reports (`core show`)", 1)[1], re.S)[0]


def test_the_guides_report_example_adds_its_table_to_the_default_view(tmp_path, plugin_site, core):
    plugin_site.add("docs-reports", _reports_example())
    code, out, err = core("generate", "--plugin", "docs-reports", "-n", 3, "--steps", 2, "--out", tmp_path / "run")
    assert code == 0, err
    code, out, err = core("show", tmp_path / "run")
    assert code == 0, err
    html = (tmp_path / "run" / "report.html").read_text()
    assert "<h3>Distances</h3>" in html and html.count("<td>0.707107</td>") == 3
    assert '<a href="samples/000002.csv">000002.csv</a>' in html  # the samples keep the default view
    assert "default view is shown" not in html


BROKEN = '''
import condgen

__condgen_api__ = "1.3"


class Broken(condgen.Generator):
    name = "broken"
    weights = None

    def build_model(self, tensors, config):
        raise ValueError("unused")

    def report(self, run):
        raise RuntimeError("the plugin's bug")


@condgen.hookimpl
def register_generators(register):
    register(Broken())
'''


def show_with_report(tmp_path, plugin_site, core, body: str = 'raise RuntimeError("the plugin\'s bug")', **run) -> str:
    """The report of a hand-made run of plugin 'broken', whose ``report`` does ``body``."""
    plugin_site.add("broken", BROKEN.replace('raise RuntimeError("the plugin\'s bug")', body))
    path = make_run(tmp_path / "run", plugin="broken", generator="broken", **run)
    code, out, err = core("show", path)
    assert code == 0, err
    return (path / "report.html").read_text()


def test_a_report_that_raises_falls_back_to_the_default_view_naming_the_plugin(tmp_path, plugin_site, core):
    html = show_with_report(tmp_path, plugin_site, core)
    assert "plugin &#39;broken&#39; (generator broken): report raised RuntimeError: the plugin&#39;s bug" in html
    assert "sample 1</pre>" in html


def test_a_run_of_an_uninstalled_plugin_gets_the_default_view(tmp_path, core):
    run = make_run(tmp_path / "run", plugin="not-installed")
    assert core("show", run)[0] == 0
    assert "plugin &#39;not-installed&#39; is not installed: the default view is shown" in (run / "report.html").read_text()


def test_a_toy_run_shows_its_scatter_plot_and_rows(tmp_path, core):
    code, out, err = core("generate", "--plugin", "toy", "-n", 4, "-c", "component=north,east", "--steps", 4, "--out", tmp_path / "run")
    assert code == 0, err
    code, out, err = core("show", tmp_path / "run", "--max-samples", 3)
    assert code == 0, err
    html = (tmp_path / "run" / "report.html").read_text()
    assert '<img class="file" src="scatter.png"' in html and '<table class="sortable">' in html
    assert html.count('class="card sample"') == 3 and "3 of 4 samples shown" in html
    assert "toy 0.1.0" in html and json.loads((tmp_path / "run" / "manifest.json").read_text())["weights"]["sha256"] in html


def test_side_by_side_manifests_mark_what_differs(tmp_path, core):
    one = make_run(tmp_path / "one", extra={"seed": 1})
    two = make_run(tmp_path / "two", extra={"seed": 2})
    code, out, err = core("show", one, two, "--out", tmp_path / "cmp" / "both.html")
    assert code == 0, err
    html = (tmp_path / "cmp" / "both.html").read_text()
    assert '<tr class="differs"><th>seed</th><td>1</td><td>2</td></tr>' in html
    assert "<tr><th>sampler</th><td>ddim</td><td>ddim</td></tr>" in html
    assert '<a href="../one/samples/000000.txt">' in html  # links relative to where the report is


def test_open_hands_the_report_to_the_browser_and_says_when_none_starts(tmp_path, core, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    run = make_run(tmp_path / "run")
    code, out, err = core("show", run, "--open")
    assert code == 0, err
    assert opened == [(run / "report.html").resolve().as_uri()]
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    code, out, err = core("show", run, "--open")
    assert out.strip() == str(run / "report.html")
    assert_one_line_error(code, err, f"no web browser could be started; open {run / 'report.html'} yourself")


def test_the_examples_of_docs_reports_run(tmp_path, core, monkeypatch):
    import shlex

    block = re.findall(r"```\n(.*?)```", (ROOT / "docs" / "reports.md").read_text(), re.S)[0]
    monkeypatch.chdir(tmp_path)
    ran = 0
    for line in block.splitlines():
        args = shlex.split(line.split("#", 1)[0])
        if not args or "--open" in args:
            continue
        assert args[0] == "core"
        code, out, err = core(*args[1:])
        assert code == 0, f"{line}: {err}"
        ran += 1
    assert ran == 5
    for page in ("runs/north-east/report.html", "runs/compare.html", "runs/index.html", "runs/euler/report.html"):
        assert (tmp_path / page).is_file(), page


def test_a_large_manifest_is_read_only_as_far_as_the_samples_shown(tmp_path, core, monkeypatch):
    """Past STREAM_BYTES the samples list of the manifest (as `core generate` streams it) is
    decoded entry by entry up to --max-samples; the report is the same as from json.loads."""
    from condgen import report
    from condgen.outputs import RunDirectory

    run = make_run(tmp_path / "run", n=30, conditions={"label": ["a", "b", "c"]}, extra={"ranks": 2})
    manifest = json.loads((run / "manifest.json").read_text())
    entries = manifest.pop("samples")
    RunDirectory(run).write_manifest(manifest, samples=iter(entries))  # the streamed layout
    assert core("show", run, "--max-samples", 5)[0] == 0
    plain = (run / "report.html").read_text()
    decoded = []
    real_decode = json.JSONDecoder.raw_decode
    monkeypatch.setattr(json.JSONDecoder, "raw_decode", lambda self, s, idx=0: decoded.append(idx) or real_decode(self, s, idx))
    monkeypatch.setattr(report, "STREAM_BYTES", 100)
    assert core("show", run, "--max-samples", 5)[0] == 0
    assert len([idx for idx in decoded if idx > 0]) == 5  # five entries; the rest is json.loads of the manifest without its list
    assert (run / "report.html").read_text() == plain
    assert "<dt>ranks</dt><dd>2</dd>" in plain and "5 of 30 samples shown" in plain
    (run / "samples" / "000029.txt").unlink()
    code, _, err = core("show", run, "--max-samples", 5)
    assert_one_line_error(code, err, "1 of 30 sample files are missing (samples/000029.txt)")


def test_parts_of_the_wrong_kind_fall_back_to_the_default_view(tmp_path, plugin_site, core):
    html = show_with_report(tmp_path, plugin_site, core, 'return condgen.Report(sections=["not a part"])')
    assert "report returned TypeError: a report part must be ReportMedia, ReportTable, ReportText or ReportHtml, not str" in html
    assert "sample 1</pre>" in html


def test_a_relative_media_path_is_the_runs_file(tmp_path, plugin_site, core):
    html = show_with_report(tmp_path, plugin_site, core, 'return condgen.Report(samples={0: [condgen.ReportMedia("samples/000000.png", caption="mine")]})',
                            files={"png": png_bytes()})
    assert '<img class="sample" src="samples/000000.png" alt="mine"><figcaption>mine</figcaption>' in html
    assert '<img class="sample" src="samples/000001.png" alt="000001.png">' in html  # sample 1 keeps the default view


def test_a_hand_edited_manifest_with_odd_values_still_shows(tmp_path, core):
    run = make_run(tmp_path / "runs" / "odd", extra={"sampler": "ddim", "weights": [], "timings": 3, "guidance": "cfg=2"})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["request"]["conditions"] = {"label": "a"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = core("gallery", tmp_path / "runs")
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert "<dt>conditions</dt><dd>label=a</dd>" in html and "<dt>guidance</dt><dd>none</dd>" in html
    assert "<tr><th>plugin</th><td>nowhere 0.1.0</td></tr>" in (tmp_path / "runs" / "index.html").read_text()

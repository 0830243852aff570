"""How `core show` presents a shapes run: an interactive mesh per shape (plotly's Mesh3d;
plotly's own JavaScript, from the Python package, is copied beside the report, so
nothing is fetched) above the mesh file."""

import hashlib
import json
import shutil
from pathlib import Path

import condgen

#: Shapes shown as interactive meshes; the rest as their files (and the run's renders.png).
INTERACTIVE = 24


def plotly_js(run) -> str:
    """The link to plotly.min.js, copied from the installed plotly package beside the report."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = run.asset("plotly.min.js")
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)
    return run.href(target)


def mesh_html(element_id: str, vertices, triangles) -> str:
    """A div and the script that draws the mesh into it with plotly (numbers only: nothing
    from the sample's text goes into the markup)."""
    data = [{"type": "mesh3d", "x": vertices[:, 0].round(4).tolist(), "y": vertices[:, 1].round(4).tolist(), "z": vertices[:, 2].round(4).tolist(),
             "i": triangles[:, 0].tolist(), "j": triangles[:, 1].tolist(), "k": triangles[:, 2].tolist(),
             "color": "#7aa6d8", "flatshading": True, "lighting": {"ambient": 0.5, "diffuse": 0.8}}]
    layout = {"margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "scene": {"aspectmode": "data"}, "width": 300, "height": 280}
    return (f'<div id="{element_id}" class="mesh" style="width:300px;height:280px"></div>'
            f'<script>Plotly.newPlot("{element_id}", {json.dumps(data)}, {json.dumps(layout)}, {{"displaylogo": false, "responsive": false}});</script>')


def report(run):
    from condgen_shapes.meshes import read_mesh

    samples, sections = {}, []
    prefix = hashlib.sha1(str(run.path.resolve()).encode()).hexdigest()[:8]  # ids unique when runs sit side by side
    for k, sample in enumerate(run.samples):
        parts = [condgen.ReportMedia(f) for f in sample.files]
        if k < INTERACTIVE and sample.file is not None:
            vertices, triangles = read_mesh(sample.file)
            if len(triangles):
                parts.insert(0, condgen.ReportHtml(mesh_html(f"mesh-{prefix}-{sample.index}", vertices, triangles)))
        samples[sample.index] = parts
    if any(isinstance(p, condgen.ReportHtml) for parts in samples.values() for p in parts):
        sections.append(condgen.ReportHtml(f'<p>Drag a shape to turn it, scroll to zoom.</p><script src="{plotly_js(run)}"></script>'))
    return condgen.Report(sections=sections, samples=samples)

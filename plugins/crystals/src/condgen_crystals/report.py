"""How `core show` presents a crystals run: each structure's unit cell (the preview's
projection along c, one cell a picture), its CIF file, and a sortable table of them all."""

import condgen


def report(run):
    from condgen_crystals.structures import preview

    rows, samples = [], {}
    for sample in run.samples:
        structure = run.read(sample)
        rows.append({"index": sample.index, "space group": structure.get("spacegroup"), "symbol": structure.get("symbol"),
                     "formula": structure.get("formula") or "", "atoms": structure.get("atoms"), "realised": structure.get("realised"),
                     "spglib": structure.get("detected_spacegroup"), "valid": structure.get("valid"), "min distance": structure.get("min_distance")})
        (picture,) = preview(run.asset(f"{sample.index:06d}-cell.png"), [sample.index], [structure], limit=1)
        samples[sample.index] = [condgen.ReportMedia(picture, caption=f"{structure.get('symbol')} {structure.get('formula') or ''}")] + \
            [condgen.ReportMedia(f, caption="CIF" if f.suffix == ".cif" else "") for f in sample.files]
    return condgen.Report(sections=[condgen.ReportTable(rows, title="Structures")], samples=samples)

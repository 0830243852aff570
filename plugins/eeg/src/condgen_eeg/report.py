"""How `core show` presents an EEG run: each window's traces and Welch spectrum (the
preview's row, one window at a time)."""

import condgen


def report(run):
    from condgen_eeg.evaluate import write_preview

    samples = {}
    for sample in run.samples:
        window = run.read(sample)
        picture = write_preview(run.asset(f"{sample.index:06d}-eeg.png"), [window], f"#{sample.index}: {window['artifact']}")
        samples[sample.index] = [condgen.ReportMedia(picture)] + [condgen.ReportMedia(f) for f in sample.files]
    return condgen.Report(samples=samples)

"""Convert TabPFN v1's checkpoint to a condgen safetensors file, once, at set-up time.

The only published TabPFN v1 weights are ``prior_diff_real_checkpoint_n_0_epoch_42.cpkt``
inside the ``tabpfn==0.1`` source archive on PyPI (later 0.1.x archives do not carry
it), a ``torch.save`` pickle of (state dict, optimizer state, config). It is read with
``condgen.read_torch_checkpoint``, which parses the pickle without running
it, and written with ``condgen.save_checkpoint``; generators load only the result.

    .venv/bin/python -m condgen_tabular.convert                       # fetch the archive from PyPI
    .venv/bin/python -m condgen_tabular.convert --from tabpfn-0.1.tar.gz
    .venv/bin/python -m condgen_tabular.convert --from prior_diff_real_checkpoint_n_0_epoch_42.cpkt
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ARCHIVE_URL = "https://files.pythonhosted.org/packages/2e/fb/cdbd8996cf3aab162a9f03a2989a4896ba9aae59e9d0e3409f788609ccc3/tabpfn-0.1.tar.gz"
ARCHIVE_SHA256 = "8a37c4131e13ad9f9aae678e659b1169e7e1bd4bbcae2b3fc2718df8ae7fdc88"
CHECKPOINT_MEMBER = "tabpfn-0.1/tabpfn/models_diff/prior_diff_real_checkpoint_n_0_epoch_42.cpkt"
#: The architecture keys of the original config that the port reads.
CONFIG_KEYS = ("emsize", "nhead", "nhid_factor", "nlayers", "num_features", "max_num_classes")


def fetch_archive(directory: Path) -> Path:
    """Download ``tabpfn-0.1.tar.gz`` from PyPI into ``directory`` and check its sha256."""
    from condgen import CheckpointError
    from condgen import sha256_file

    target = directory / "tabpfn-0.1.tar.gz"
    try:
        with urllib.request.urlopen(ARCHIVE_URL, timeout=120) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise CheckpointError(f"cannot download {ARCHIVE_URL} ({exc}); download it by hand and pass --from tabpfn-0.1.tar.gz") from None
    if sha256_file(target) != ARCHIVE_SHA256:
        raise CheckpointError(f"the downloaded tabpfn-0.1.tar.gz does not match sha256 {ARCHIVE_SHA256[:12]}...; try again or download it by hand")
    return target


def extract_checkpoint(archive: Path, directory: Path) -> Path:
    """The ``.cpkt`` member of the source archive, as a file in ``directory`` (read as
    bytes; the archive's code is never imported)."""
    from condgen import CheckpointError

    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember(CHECKPOINT_MEMBER)
            source = tar.extractfile(member)
            target = directory / Path(CHECKPOINT_MEMBER).name
            with open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    except KeyError:
        raise CheckpointError(f"{archive} has no {CHECKPOINT_MEMBER}; only the tabpfn==0.1 archive (not 0.1.x) carries the v1 weights") from None
    except (tarfile.TarError, OSError) as exc:
        raise CheckpointError(f"cannot read {archive} as a .tar.gz archive ({exc})") from None
    return target


def state_from_checkpoint(obj) -> tuple[dict, dict]:
    """(tensors named as ``TabPFNTransformer`` names them, architecture config) from the
    object stored in the checkpoint."""
    import torch

    from condgen import CheckpointError

    if not (isinstance(obj, (tuple, list)) and len(obj) >= 3 and isinstance(obj[0], dict) and isinstance(obj[2], dict)):
        raise CheckpointError("not a TabPFN v1 checkpoint: expected (state dict, optimizer state, config)")
    state, config = obj[0], obj[2]
    missing = [k for k in CONFIG_KEYS if not isinstance(config.get(k), int)]
    if missing:
        raise CheckpointError(f"not a TabPFN v1 checkpoint: its config lacks {', '.join(missing)}")
    tensors = {}
    for name, value in state.items():
        name = name.removeprefix("module.")
        if name == "criterion.weight":  # the training loss's class weights: not part of the network
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"not a TabPFN v1 checkpoint: {name} is not a tensor")
        tensors[name.replace("transformer_encoder.layers.", "layers.").replace("self_attn.", "")] = value.float()
    arch = {k: int(config[k]) for k in CONFIG_KEYS}
    arch.update(backbone="tabpfn-v1", source="tabpfn==0.1 " + Path(CHECKPOINT_MEMBER).name)
    return tensors, arch


def convert(source: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Write the safetensors file from ``source`` (a tabpfn-0.1.tar.gz, a .cpkt file, or
    None to fetch the archive from PyPI); checks that the weights load into the port."""
    from condgen import CheckpointError, save_checkpoint
    from condgen import read_torch_checkpoint

    from condgen_tabular.tabpfn import TabPFNTransformer, weights_path

    out = Path(out) if out is not None else weights_path()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if source is None:
            path = fetch_archive(tmp)
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise CheckpointError(f"{path} not found; pass the tabpfn-0.1.tar.gz archive or its .cpkt checkpoint")
        if path.name.endswith((".tar.gz", ".tgz")):
            path = extract_checkpoint(path, tmp)
        tensors, config = state_from_checkpoint(read_torch_checkpoint(path))
    model = TabPFNTransformer(config)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint does not fit the TabPFN v1 architecture: {str(exc).splitlines()[0]}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, tensors, config, generator="tabular")
    return out


def main(argv=None) -> int:
    from condgen import CondgenError

    parser = argparse.ArgumentParser(prog="python -m condgen_tabular.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", help="tabpfn-0.1.tar.gz or its .cpkt checkpoint (default: download the archive from PyPI)")
    parser.add_argument("--out", help="where to write the safetensors file (default: the condgen cache, where -c backbone=tabpfn looks)")
    args = parser.parse_args(argv)
    try:
        path = convert(args.source, args.out)
    except CondgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

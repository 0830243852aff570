"""ChemNet and the Fréchet ChemNet Distance (Preuer et al. 2018), without fcd_torch's code.

fcd-torch ships ChemNet's trained weights as ``ChemNet_v0.13_pretrained.pt``, a legacy
torch pickle of ``[(layer type, (tensors, layer arguments, extra)), ...]`` converted from
the original Keras model. It is read with ``condgen.read_torch_checkpoint``,
which parses the pickle's opcodes and never executes them; the network is our own.

ChemNet: canonical SMILES -> one-hot over 35 symbols, 350 positions (scaled by 1/35, as
the Keras model was trained), two 1-D convolutions (kernel 4, stride 2, TensorFlow
"same" padding, SELU), then two LSTMs that each read their input reversed; the penultimate
activations (512) are the last output of the second LSTM. FCD is the Fréchet distance
between Gaussians fitted to the activations of two sets of molecules.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import condgen
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SYMBOLS = ("C", "N", "O", "H", "F", "Cl", "P", "B", "Br", "S", "I", "Si", "#", "(", ")", "+", "-", "1", "2", "3", "4", "5", "6", "7", "8", "=", "[", "]", "@", "c", "n", "o", "s", "X", ".")
UNKNOWN, STOP = SYMBOLS.index("X"), SYMBOLS.index(".")
PADDED_LENGTH = 350


def chemnet_symbols(smiles: str) -> list[int]:
    """Symbol ids: Cl, Br and Si are one symbol; anything outside the alphabet is X."""
    ids, i = [], 0
    while i < len(smiles):
        pair = smiles[i : i + 2]
        symbol = pair if len(pair) == 2 and pair[1] in "ril" else smiles[i]
        i += len(symbol)
        ids.append(SYMBOLS.index(symbol) if symbol in SYMBOLS else UNKNOWN)
    return ids


def one_hot(smiles_list: list[str]) -> torch.Tensor:
    """[B, 35, 350] inputs; the '.' after the molecule marks its end, the rest stays zero."""
    out = torch.zeros(len(smiles_list), PADDED_LENGTH, len(SYMBOLS))
    for row, smiles in enumerate(smiles_list):
        ids = chemnet_symbols(smiles)[: PADDED_LENGTH - 1] + [STOP]
        out[row, torch.arange(len(ids)), torch.tensor(ids)] = 1.0
    return (out / len(SYMBOLS)).transpose(1, 2)


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(L / s); extra padding goes to the end."""
    total = max((math.ceil(length / stride) - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class ChemNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(35, 32, 4, stride=2, bias=False)
        self.conv2 = nn.Conv1d(32, 32, 4, stride=2, bias=False)
        self.lstm1 = nn.LSTM(32, 128, batch_first=True)
        self.lstm2 = nn.LSTM(128, 512, batch_first=True)

    def forward(self, x):
        for conv in (self.conv1, self.conv2):
            x = F.selu(conv(F.pad(x, same_padding(x.shape[-1], conv.kernel_size[0], conv.stride[0]))))
        h, _ = self.lstm1(x.transpose(1, 2).flip(1))
        h, _ = self.lstm2(h.flip(1))
        return h[:, -1]


def weights_path() -> Path:
    spec = importlib.util.find_spec("fcd_torch")
    path = Path(next(iter(spec.submodule_search_locations))) / "ChemNet_v0.13_pretrained.pt" if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise condgen.UsageError("ChemNet's weights are missing; install them with `pip install fcd-torch` (they are read, never unpickled)")
    return path


@lru_cache(maxsize=1)
def load_chemnet() -> ChemNet:
    from condgen import read_torch_checkpoint

    layers = read_torch_checkpoint(weights_path())
    kinds = [kind for kind, _ in layers]
    if kinds != ["Conv1d", "Conv1d", "LSTM", "LSTM"]:
        raise condgen.CheckpointError(f"unexpected ChemNet layers {kinds}; expected fcd-torch's ChemNet v0.13")
    model = ChemNet()
    for module, (_, (tensors, _, extra)) in zip((model.conv1, model.conv2, model.lstm1, model.lstm2), layers):
        if isinstance(module, nn.LSTM) and not extra.get("reverse"):
            raise condgen.CheckpointError("ChemNet's LSTMs are expected to read their input reversed")
        module.load_state_dict({k: v for k, v in tensors.items() if torch.is_tensor(v)})
    return model.eval()


def activations(smiles_list: list[str], batch: int = 256) -> np.ndarray:
    """[N, 512] ChemNet activations of valid SMILES (canonicalised first, as ChemNet saw them)."""
    from condgen_molecules.data import canonical

    model = load_chemnet()
    canon = [canonical(s) for s in smiles_list]
    if any(c is None for c in canon):
        raise condgen.UsageError("FCD takes valid molecules only; filter the invalid ones first")
    out = []
    with torch.inference_mode():
        for start in range(0, len(canon), batch):
            out.append(model(one_hot(canon[start : start + batch])).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 512))


def gaussian(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return acts.mean(0), np.cov(acts, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the square root by scipy."""
    from scipy import linalg

    root = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(root).all():  # nearly singular product: regularise both
        eye = np.eye(len(mu1)) * 1e-6
        root = linalg.sqrtm((sigma1 + eye) @ (sigma2 + eye))
    root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def fcd(generated: list[str], reference: list[str] | tuple) -> float:
    """FCD between generated SMILES and a reference (SMILES, or a (mu, sigma) pair)."""
    mu_g, sigma_g = gaussian(activations(generated))
    mu_r, sigma_r = reference if isinstance(reference, tuple) else gaussian(activations(reference))
    return frechet_distance(mu_g, sigma_g, mu_r, sigma_r)

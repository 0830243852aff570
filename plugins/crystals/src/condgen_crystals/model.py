"""The Wyckoff Transformer (Kazeev et al. 2025): a permutation-invariant autoregressive
model of a crystal's set of occupied Wyckoff sites, conditioned on the space group.

A crystal is generated site by site; each site is three tokens of one vocabulary, drawn
in the paper's cascade: element (or STOP), then site symmetry, then enumeration.

    vocabulary:  [STOP] [element 1..E] [site symmetry 1..S] [enumeration 1..K]

The network is a Transformer *encoder without positional encoding*. Its input is the
space-group token, one token per completed site (the sum of its element, site-symmetry
and enumeration embeddings and its multiplicity) and one query token that carries the
stage and the parts of the current site drawn so far. Optionally (``composition=True``)
the sites and the query also carry the composition so far: per site its element's atoms
per cell and reduced-formula count over all completed sites; on the query the atoms,
distinct elements, and the drawn element's counts. The sites attend to each other (not
to the query); the query attends to everything, and the head of its stage reads its
output. With no position anywhere, permuting the completed sites permutes the encoder's
rows and leaves the query's output, hence the next-token distribution, unchanged: the
order of sites carries no meaning.

Site symmetries and enumerations that do not exist in the requested group get a large
negative logit (the token means nothing there), and so does a position without free
parameters that a site already holds (``enforce_site_rules``; off, the raw model's rate of
breaking that rule is what the benchmark reports beside it). STOP is masked while the
completed sites' composition fails SMACT's charge-balance screen and another site may
still come (``enforce_charge_balance``). ``atoms`` (total multiplicity) and
``elements`` (allowed elements) are constraints on the logits, not learned conditions:
with ``atoms`` the model may only choose sites after which that count stays reachable
(positions without free parameters at most once) and may stop only on it.
"""

from __future__ import annotations

import re

import torch
from torch import nn

STOP = 0
FORMULA_CAP = 48  # reduced-formula counts above this share the last index
NEG = -1e9  # finite, so CFG's difference of two masked branches stays 0 (not NaN)


class WyckoffTransformer(nn.Module):
    kind = "autoregressive"

    def __init__(self, elements: list[str], site_symmetries: list[str], enumerations: int, tables: dict, max_sites: int = 20,
                 d_model: int = 128, layers: int = 3, heads: int = 4, dropout: float = 0.1, max_atoms: int = 80, composition: bool = False):
        super().__init__()
        self.elements, self.site_symmetries = list(elements), list(site_symmetries)
        self.E, self.S, self.K = len(self.elements), len(self.site_symmetries), int(enumerations)
        self.vocab_size = 1 + self.E + self.S + self.K
        self.eos_id = STOP
        self.max_sites, self.max_atoms = max_sites, max_atoms
        self.sample_shape = (3 * max_sites + 1,)
        # tables [230, S, K]: allowed, multiplicity, free parameters, pyxtal index
        for name in ("allowed", "multiplicity", "dof", "index"):
            self.register_buffer(name, tables[name].clone(), persistent=False)
        self.group = nn.Embedding(231, d_model)  # 230: no group (CFG's unconditional branch)
        self.element = nn.Embedding(self.E, d_model)
        self.symmetry = nn.Embedding(self.S, d_model)
        self.enumeration = nn.Embedding(self.K, d_model)
        # the site's multiplicity in the group (an engineered feature, as in the authors' tokeniser:
        # a function of group, site symmetry and enumeration; index 0 when the group is unknown)
        self.multiplicity_feature = nn.Embedding(int(self.multiplicity.max()) + 1, d_model)
        self.composition_on = bool(composition)  # optional composition features (the shipped weights have none)
        if self.composition_on:
            self._composition_tables(d_model)
        self.stage = nn.Embedding(3, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.heads = nn.ModuleList([nn.Linear(d_model, 1 + self.E), nn.Linear(d_model, self.S), nn.Linear(d_model, self.K)])
        self._reach_cache: dict = {}
        self.enforce_site_rules = True  # mask reuse of positions without free parameters (False: the raw model)
        self.enforce_charge_balance = True  # STOP only on a charge-balanced composition (False: the raw model)

    def _composition_tables(self, d_model):
        """Composition so far, functions of the set of completed sites (so still order-free), in
        the spirit of the authors' token-count features: on each site, its element's atoms per
        cell over all completed sites; on the query, the atoms and distinct elements so far and
        (once the element is drawn) that element's atoms so far. Counts above max_atoms share the
        last index. Zero-initialised, so a network warm-started from weights without them starts
        out computing what those weights did."""
        max_atoms, max_sites = self.max_atoms, self.max_sites
        self.composition_feature = nn.Embedding(max_atoms + 2, d_model)
        self.query_atoms = nn.Embedding(max_atoms + 2, d_model)
        self.query_species = nn.Embedding(max_sites + 1, d_model)
        self.query_element_atoms = nn.Embedding(max_atoms + 2, d_model)
        # the same per element in the reduced formula of the completed sites (counts divided by their
        # greatest common divisor: Na8S16 -> NaS2), the scale on which charge balance is decided
        self.formula_feature = nn.Embedding(FORMULA_CAP + 1, d_model)
        self.query_formula = nn.Embedding(FORMULA_CAP + 1, d_model)
        for table in (self.composition_feature, self.query_atoms, self.query_species, self.query_element_atoms, self.formula_feature, self.query_formula):
            nn.init.zeros_(table.weight)

    # --- the network -------------------------------------------------------------------

    def encode(self, group, el, ss, en, present, q_stage, q_el, q_ss):
        """group [B]; sites el/ss/en/present [B, N]; queries q_* [B, Q] -> [B, Q, d]."""
        B, N = el.shape
        Q = q_stage.shape[1]
        g = self.group(torch.where(group < 0, torch.full_like(group, 230), group))[:, None]
        el, ss, en = el.clamp(0, self.E - 1), ss.clamp(0, self.S - 1), en.clamp(0, self.K - 1)  # absent sites and STOP rows
        mult = torch.where(group[:, None] >= 0, self.multiplicity[group.clamp(min=0)[:, None], ss, en], 0)
        sites = self.element(el) + self.symmetry(ss) + self.enumeration(en) + self.multiplicity_feature(mult)
        q_el = q_el.clamp(0, self.E - 1)
        query = self.stage(q_stage) + (q_stage >= 1)[..., None] * self.element(q_el) + (q_stage >= 2)[..., None] * self.symmetry(q_ss.clamp(0, self.S - 1))
        if self.composition_on:
            top = self.max_atoms + 1
            atoms, element_atoms, species, divisor = self.composition(el, mult, present)
            sites = sites + self.composition_feature(element_atoms.clamp(max=top)) + self.formula_feature((element_atoms // divisor[:, None]).clamp(max=FORMULA_CAP))
            q_atoms = ((el[:, None, :] == q_el[:, :, None]) * atoms[:, None, :]).sum(-1)  # [B, Q]: the drawn element's atoms so far
            q_formula = self.query_formula((q_atoms // divisor[:, None]).clamp(max=FORMULA_CAP))
            query = (query + (q_stage >= 1)[..., None] * (self.query_element_atoms(q_atoms.clamp(max=top)) + q_formula)
                     + (self.query_atoms(atoms.sum(1).clamp(max=top)) + self.query_species(species.clamp(max=self.max_sites)))[:, None])
        x = torch.cat([g, sites, query], 1)
        L = 1 + N + Q
        # attention: context rows see the group and present sites; a query sees those and itself
        blocked = torch.zeros(B, L, L, dtype=torch.bool, device=x.device)
        absent = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=x.device), ~present, torch.ones(B, Q, dtype=torch.bool, device=x.device)], 1)
        blocked |= absent[:, None, :]
        eye = torch.eye(Q, dtype=torch.bool, device=x.device)
        blocked[:, 1 + N :, 1 + N :] = ~eye
        heads = self.encoder.layers[0].self_attn.num_heads
        mask = blocked.repeat_interleave(heads, 0)
        out = self.encoder(x, mask=mask)
        return self.norm(out[:, 1 + N :])

    @staticmethod
    def composition(el, mult, present):
        """The composition of the completed sites, a function of their set: per site its atoms
        per cell (0 when absent) and its element's atoms over all completed sites [B, N], and
        the number of distinct elements and the greatest common divisor of the elements' atoms
        (1 when there are none), which divides them into the reduced formula [B]."""
        atoms = mult * present
        same = (el[:, :, None] == el[:, None, :]) & present[:, None, :]  # [B, N, N]
        element_atoms = (same * atoms[:, None, :]).sum(-1)
        species = (present / same.sum(-1).clamp(min=1)).sum(-1).round().long()
        divisor = element_atoms.new_zeros(element_atoms.shape[0])
        for column in element_atoms.unbind(1):  # gcd(x, 0) = x: absent rows change nothing
            divisor = torch.gcd(divisor, column)
        return atoms, element_atoms, species, divisor.clamp(min=1)

    def stage_logits(self, h, stage, group):
        """Logits of one stage from query outputs h [B, d] (group structure masked)."""
        logits = self.heads[stage](h)
        if stage == 0 or group is None:
            return logits
        known = group >= 0
        g = group.clamp(min=0)
        if stage == 1:
            ok = self.allowed[g].any(-1)
        else:
            raise ValueError("stage 2 needs the site symmetry; use enumeration_logits")
        return torch.where(known[:, None] & ~ok, torch.full_like(logits, NEG), logits)

    # --- training ----------------------------------------------------------------------

    def loss(self, group, el, ss, en, present, rows: int | None = None, generator=None):
        """Mean negative log-likelihood per token of the given site sets: every prefix of
        the given order (or ``rows`` of them drawn at random), each with its three stage
        queries."""
        B, N = el.shape
        n = present.sum(1)
        idx = torch.repeat_interleave(torch.arange(B, device=el.device), n + 1)  # one row per (crystal, prefix)
        j = torch.cat([torch.arange(int(k) + 1, device=el.device) for k in n])
        if rows is not None and len(idx) > rows:
            pick = torch.randperm(len(idx), generator=generator)[:rows].sort().values
            idx, j = idx[pick], j[pick]
        prefix = torch.arange(N, device=el.device)[None] < j[:, None]
        last = j == n[idx]  # the next token is STOP
        jj = j.clamp(max=N - 1)
        t_el, t_ss, t_en = el[idx, jj], ss[idx, jj], en[idx, jj]
        q_stage = torch.arange(3, device=el.device)[None].expand(len(idx), 3)
        g = group[idx]
        h = self.encode(g, el[idx], ss[idx], en[idx], prefix, q_stage, t_el[:, None].expand(-1, 3), t_ss[:, None].expand(-1, 3))
        target0 = torch.where(last, torch.zeros_like(t_el), t_el + 1)
        total = nn.functional.cross_entropy(self.heads[0](h[:, 0]), target0, reduction="sum")
        more = ~last
        l1 = self.stage_logits(h[more, 1], 1, g[more])
        l2 = self.enumeration_logits(h[more, 2], g[more], t_ss[more])
        total = total + nn.functional.cross_entropy(l1, t_ss[more], reduction="sum") + nn.functional.cross_entropy(l2, t_en[more], reduction="sum")
        return total / (len(idx) + 2 * int(more.sum()))

    def enumeration_logits(self, h, group, ss):
        logits = self.heads[2](h)
        ok = self.allowed[group.clamp(min=0), ss.clamp(min=0)]
        return torch.where((group >= 0)[:, None] & ~ok, torch.full_like(logits, NEG), logits)

    # --- sampling: the ``autoregressive`` protocol ----------------------------------------

    def split(self, tokens):
        """tokens [B, L] -> complete sites (el, ss, en, present [B, n]), stage, partial [B, L % 3]."""
        B, L = tokens.shape
        n, stage = L // 3, L % 3
        body = tokens[:, : 3 * n].reshape(B, n, 3)
        stopped = (body == STOP).cumsum(-1).cumsum(1) > 0
        present = ~stopped.any(-1)
        el = body[..., 0] - 1
        ss = body[..., 1] - 1 - self.E
        en = body[..., 2] - 1 - self.E - self.S
        return el, ss, en, present, stage, tokens[:, 3 * n :]

    def __call__(self, tokens, cond, cache=None):
        return super().__call__(tokens, cond, cache)

    def forward(self, tokens, cond, cache=None):
        tokens = tokens.long()
        B = tokens.shape[0]
        group = cond.get("spacegroup") if isinstance(cond, dict) else None
        group = torch.full((B,), -1, dtype=torch.long, device=tokens.device) if group is None else group.to(tokens.device).long()
        el, ss, en, present, stage, partial = self.split(tokens)
        p_el = partial[:, 0] - 1 if stage >= 1 else torch.zeros(B, dtype=torch.long, device=tokens.device)
        p_ss = partial[:, 1] - 1 - self.E if stage >= 2 else torch.zeros(B, dtype=torch.long, device=tokens.device)
        h = self.encode(group, el, ss, en, present, torch.full((B, 1), stage, device=tokens.device), p_el[:, None], p_ss[:, None])[:, 0]
        full = torch.full((B, self.vocab_size), NEG, dtype=h.dtype, device=h.device)
        if stage == 0:
            part = self.heads[0](h)
            if el.shape[1] == 0:
                part[:, STOP] = NEG  # a crystal has at least one site
            if el.shape[1] >= self.max_sites:
                part[:, 1:] = NEG
            full[:, : 1 + self.E] = part
        elif stage == 1:
            full[:, 1 + self.E : 1 + self.E + self.S] = self.stage_logits(h, 1, group)
        else:
            full[:, 1 + self.E + self.S :] = self.enumeration_logits(h, group, p_ss.clamp(min=0, max=self.S - 1))
        if self.enforce_site_rules and stage >= 1:
            full = self._site_rules(full, group, ss, en, present, stage, p_ss)
        full = self._constrain(full, cond, group, el, ss, en, present, stage, p_el, p_ss)
        if self.enforce_charge_balance and stage == 0 and el.shape[1] > 0:
            full = self._charge_balance(full, group, el, ss, en, present)
        stopped = (tokens == STOP).any(1)
        if stopped.any():  # finished rows: only STOP (the sampler repeats it anyway)
            full[stopped] = NEG
            full[stopped, STOP] = 0.0
        return full, None

    def _site_rules(self, logits, group, ss, en, present, stage, p_ss):
        """A position without free parameters holds one orbit: once used, it is masked."""
        B = logits.shape[0]
        g = group.clamp(min=0)
        flat = (ss.clamp(min=0) * self.K + en.clamp(min=0, max=self.K - 1)).clamp(max=self.S * self.K - 1)
        used = torch.zeros(B, self.S * self.K, device=logits.device).scatter_add_(1, flat, present.float()).view(B, self.S, self.K) > 0
        blocked = used & (self.dof[g] == 0) & (group >= 0)[:, None, None]
        if stage == 1:
            free = (self.allowed[g] & ~blocked).any(-1) | (group < 0)[:, None]
            logits[:, 1 + self.E : 1 + self.E + self.S] = logits[:, 1 + self.E : 1 + self.E + self.S].masked_fill(~free, NEG)
        else:
            row = blocked[torch.arange(B), p_ss.clamp(min=0, max=self.S - 1)]
            logits[:, 1 + self.E + self.S :] = logits[:, 1 + self.E + self.S :].masked_fill(row, NEG)
        return logits

    def _charge_balance(self, logits, group, el, ss, en, present):
        """STOP only on a composition SMACT's screen accepts, while another site may still be
        added (not at the site cap, not where ``atoms`` demands the stop); judged per row on the
        completed sites' atoms per cell, so it does not depend on the batch."""
        from condgen_crystals.data import charge_balanced_counts

        may_stop = logits[:, STOP] > NEG / 2
        may_go_on = (logits[:, 1 : 1 + self.E] > NEG / 2).any(-1)
        for b in (may_stop & may_go_on & (group >= 0)).nonzero().flatten().tolist():
            g, counts = int(group[b]), {}
            for e, s, k, p in zip(el[b].tolist(), ss[b].tolist(), en[b].tolist(), present[b].tolist()):
                if p:
                    counts[self.elements[e]] = counts.get(self.elements[e], 0) + int(self.multiplicity[g, s, k])
            if counts and not charge_balanced_counts(counts):
                logits[b, STOP] = NEG
        return logits

    # --- constraints from ``atoms`` and ``elements`` ----------------------------------------

    def reachable(self, g: int, used_fixed: frozenset) -> int:
        """Bit set of atom counts a group can still add, given fixed positions already used."""
        key = (g, used_fixed)
        if key not in self._reach_cache:
            limit = (1 << (self.max_atoms + 1)) - 1
            bits = 1
            mult, dof, allowed = self.multiplicity[g], self.dof[g], self.allowed[g]
            for s, e in allowed.nonzero().tolist():
                m = int(mult[s, e])
                if int(dof[s, e]) > 0:
                    for _ in range(self.max_atoms // m):
                        bits = (bits | (bits << m)) & limit
                elif (s, e) not in used_fixed:
                    bits = (bits | (bits << m)) & limit
            self._reach_cache[key] = bits
        return self._reach_cache[key]

    def _constrain(self, logits, cond, group, el, ss, en, present, stage, p_el, p_ss):
        atoms = cond.get("atoms") if isinstance(cond, dict) else None
        allowed_elements = cond.get("elements") if isinstance(cond, dict) else None
        if allowed_elements is not None and stage == 0:
            for b, text in enumerate(allowed_elements):
                if text:
                    keep = {self.elements.index(e) + 1 for e in re.split(r"[,+\s]+", text) if e in self.elements}
                    drop = [i for i in range(1, 1 + self.E) if i not in keep]
                    logits[b, drop] = NEG
        if atoms is None:
            return logits
        for b in range(logits.shape[0]):
            target, g = int(atoms[b]), int(group[b])
            if target < 0 or g < 0:
                continue
            sites = [(int(s), int(e)) for s, e, p in zip(ss[b], en[b], present[b]) if p]
            used = frozenset(site for site in sites if int(self.dof[g][site]) == 0)
            rem = target - sum(int(self.multiplicity[g][site]) for site in sites)
            if stage == 0:
                if rem > 0:
                    logits[b, STOP] = NEG
                else:
                    logits[b, 1 : 1 + self.E] = NEG
                continue
            fits = torch.zeros(self.S, self.K, dtype=torch.bool)
            for s, e in self.allowed[g].nonzero().tolist():
                m, fixed = int(self.multiplicity[g][s, e]), int(self.dof[g][s, e]) == 0
                if m > rem or (fixed and (s, e) in used):
                    continue
                after = used | {(s, e)} if fixed else used
                fits[s, e] = bool((self.reachable(g, after) >> (rem - m)) & 1)
            if stage == 1:
                logits[b, 1 + self.E : 1 + self.E + self.S][~fits.any(-1)] = NEG
            else:
                row = fits[int(p_ss[b]).__index__()] if 0 <= int(p_ss[b]) < self.S else torch.zeros(self.K, dtype=torch.bool)
                logits[b, 1 + self.E + self.S :][~row] = NEG
        return logits

    # --- likelihood, for tests and evaluation -------------------------------------------

    @torch.no_grad()
    def next_site_logits(self, group: int, sites: list[tuple[int, int, int]]):
        """Stage-0 logits (STOP + elements) after the given completed sites (el, ss, en)."""
        t = torch.tensor([[1 + a, 1 + self.E + b, 1 + self.E + self.S + c] for a, b, c in sites], dtype=torch.long).reshape(1, -1)
        logits, _ = self.forward(t, {"spacegroup": torch.tensor([group])})
        return logits[0, : 1 + self.E]

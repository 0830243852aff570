"""``ConformanceTests``: every check of the kit as a pytest test class.

Subclass it in your plugin's tests and name the plugin::

    class TestConformance(ConformanceTests):
        plugin = "waves"

Checks that concern one generator run once per generator the plugin registers (a
plugin with none, e.g. one that only adds a sampler, skips them). Class attributes
tune the checks for big models: fewer samples, steps, looser batch tolerance.
"""

from __future__ import annotations

import pytest

from condgen.plugins import reset
from condgen.testing import checks, isolate


class ConformanceTests:
    #: Entry-point name of the plugin under test.
    plugin: str = ""
    #: Samples and sampling steps used by the checks that generate.
    n: int = 6
    steps: int = 8
    #: A condition (Python values, lists cycle over samples); default: every class name,
    #: two values per scalar, a short text (see ``checks.example_condition``).
    condition: dict | None = None
    #: How far a sample may move when the batch size changes (0: bit for bit).
    atol: float = 1e-5
    rtol: float = 1e-5
    #: Formats whose round trip loses precision (checked for idempotence instead).
    lossy_formats: tuple[str, ...] = ("png",)

    def pytest_generate_tests(self, metafunc):
        if not self.plugin:
            raise ValueError(f"{type(self).__name__}: set `plugin = \"<entry-point name>\"` on the class")
        if "generator_name" in metafunc.fixturenames:
            metafunc.parametrize("generator_name", checks.generator_names(self.plugin))

    @pytest.fixture(autouse=True)
    def _condgen_isolation(self, monkeypatch, tmp_path):
        isolate(monkeypatch, tmp_path)
        yield
        reset()

    @pytest.fixture
    def generator(self, generator_name):
        return checks.get_generator(self.plugin, generator_name)

    def _condition(self, generator) -> dict:
        return dict(self.condition) if self.condition is not None else checks.example_condition(generator.conditions)

    # -- the plugin -----------------------------------------------------------------------

    def test_registration_and_status(self):
        checks.check_registration(self.plugin)

    def test_names_are_unique(self):
        checks.check_unique_names(self.plugin)

    def test_help_and_registration_import_no_torch(self):
        checks.check_torch_free(self.plugin)

    def test_registered_entries_resolve(self):
        checks.check_entries_resolve(self.plugin)

    # -- each generator -------------------------------------------------------------------

    def test_generator_declaration(self, generator):
        checks.check_generator_declaration(generator)

    def test_condition_schema(self, generator):
        checks.check_condition_schema(generator)

    def test_determinism_under_seed_and_batch_size(self, generator):
        checks.check_determinism(generator, self._condition(generator), n=self.n, steps=self.steps, atol=self.atol, rtol=self.rtol)

    def test_determinism_with_classifier_free_guidance(self, generator):
        from condgen.conditions import ClassLabel
        from condgen.plugins import get_plugin_manager

        cfg = get_plugin_manager({self.plugin}).guidance.get("cfg")
        labels = [k for k, c in generator.conditions.items() if isinstance(c, ClassLabel)]
        if cfg is None or generator.kind not in cfg.kinds or not labels:
            pytest.skip("CFG needs a class-label condition and a model kind CFG applies to")
        checks.check_determinism(generator, self._condition(generator), n=self.n, steps=self.steps, guidance=["cfg=2"], atol=self.atol, rtol=self.rtol)

    def test_writer_round_trip(self, generator, tmp_path):
        checks.check_writer_round_trip(generator, tmp_path, self._condition(generator), n=min(self.n, 4), steps=self.steps, lossy=self.lossy_formats)

    def test_cli_smoke(self, generator, tmp_path):
        checks.check_cli_smoke(generator, tmp_path, self._condition(generator), n=min(self.n, 4), steps=self.steps)

    def test_resume_after_interruption(self, generator, tmp_path):
        checks.check_resume(generator, tmp_path, self._condition(generator), n=min(self.n, 6), steps=self.steps)

    def test_manifest_contents(self, generator, tmp_path):
        n = min(self.n, 4)
        run_dir = checks.cli_generate(generator, tmp_path, self._condition(generator), n=n, steps=self.steps)
        checks.check_manifest(run_dir, generator, n=n, steps=self.steps)
        checks.check_report(run_dir, generator)

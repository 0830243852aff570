"""condgen's conformance kit on the tabular plugin (built-in iris, 50 rows)."""

from condgen.testing import ConformanceTests


class TestConformance(ConformanceTests):
    plugin = "tabular"
    condition = {"class": ["setosa", "versicolor", "virginica"]}

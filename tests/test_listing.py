"""`core samplers` / `core guidance` read well at any terminal width."""

import pytest


@pytest.mark.parametrize("command", ["samplers", "guidance"])
def test_a_narrow_terminal_gets_one_block_per_entry_within_its_width(core, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = core(command)
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "┃" not in out  # no table whose cells wrap to a word a line
    assert "  kinds: " in out and "  paper: " in out
    assert lines[0] in {"ddpm", "cfg"}  # the first entry's name heads its block


def test_a_wide_terminal_gets_the_table(core, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = core("samplers")
    assert code == 0, err
    assert "┃ name" in out and "dpmpp-2m" in out

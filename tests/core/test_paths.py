"""core.paths.display_path: paths as the user would type them."""

from __future__ import annotations

from maskforge.core.paths import display_path


def test_inside_the_working_folder_is_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert display_path(tmp_path / "out" / "a.jpg") == "out/a.jpg"
    assert display_path("out") == "out"
    assert display_path("out", folder_slash=True) == "out/"
    assert display_path(tmp_path) == "."
    assert display_path(tmp_path, folder_slash=True) == "./"


def test_outside_the_working_folder_is_as_given(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert display_path(tmp_path / "there" / "b.png") == (tmp_path / "there" / "b.png").as_posix()
    assert display_path("../there/b.png") == "../there/b.png"

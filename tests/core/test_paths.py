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


def test_row_path_keeps_a_links_own_name(tmp_path):
    from maskforge.core.paths import row_path

    (tmp_path / "store").mkdir()
    (tmp_path / "store/real.jpg").write_bytes(b"x")
    (tmp_path / "in").mkdir()
    (tmp_path / "in/link.jpg").symlink_to("../store/real.jpg")
    (tmp_path / "in/gone.mp4").symlink_to("../../../nonexistent.mp4")
    out = tmp_path / "out"
    out.mkdir()
    assert row_path(tmp_path / "in/link.jpg", out) == "../in/link.jpg"
    assert row_path(tmp_path / "in/gone.mp4", out) == "../in/gone.mp4"
    assert row_path(tmp_path / "in/./sub/../link.jpg", out) == "../in/link.jpg"
    # A CSV folder reached through a link: `..` counts from where it really is.
    (tmp_path / "deep/er").mkdir(parents=True)
    (tmp_path / "outlink").symlink_to(tmp_path / "deep/er")
    rel = row_path(tmp_path / "in/link.jpg", tmp_path / "outlink")
    assert rel == "../../in/link.jpg" and (tmp_path / "deep/er" / rel).is_file()


def test_not_regular_says_why_without_opening(tmp_path, fifo):
    from maskforge.core.paths import not_regular

    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "dangling.jpg").symlink_to("nowhere.jpg")
    (tmp_path / "dev.jpg").symlink_to("/dev/null")
    assert not_regular(tmp_path / "a.jpg") == ""
    assert not_regular(fifo(tmp_path / "cam.mp4")) == "not a regular file (a FIFO)"
    assert not_regular(tmp_path / "dev.jpg") == "not a regular file (a device)"
    assert not_regular(tmp_path) == "is a directory"
    assert not_regular(tmp_path / "dangling.jpg") == "file not found"

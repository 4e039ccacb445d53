"""Numbered tables: the MyST source a notebook outputs, checked cell by cell."""

import math

import pandas as pd
import pytest

from dfsae.paper import tables


def rows(source):
    return [line.strip("|").split(" | ") for line in source.splitlines() if line.startswith("| ")]


def test_a_table_is_a_numbered_myst_table_with_formatted_cells():
    frame = pd.DataFrame({"unit": [56, 4], "E": [0.0, 9.00123], "count": [18898944, 7], "name": ["a|b", "c"],
                          "missing": [math.nan, 0.5]})
    source = tables.markdown(frame, "A  caption\n on two lines.", "tab-demo")
    assert source.startswith("```{table} A caption on two lines.\n:name: tab-demo\n")
    header, *body = [[c.strip() for c in r] for r in rows(source)]
    assert header == ["unit", "E", "count", "name", "missing"]
    assert body[0] == ["56", "0", "18,898,944", "a\\|b", "–"]          # integers stay integers
    assert body[1] == ["4", "9.00", "7", "c", "0.500"]
    assert "|--:|--:|--:|:--|--:|" in source                           # numbers right-aligned


def test_a_named_index_becomes_a_column_and_an_unnamed_one_is_dropped():
    named = pd.Series([1.5], index=pd.Index(["x"], name="model"), name="v")
    assert [c.strip() for c in rows(tables.markdown(named, "c", "tab-a"))[0]] == ["model", "v"]
    unnamed = pd.DataFrame({"v": [1.5]}, index=[7])
    assert [c.strip() for c in rows(tables.markdown(unnamed, "c", "tab-b"))[0]] == ["v"]


def test_a_table_name_must_be_a_label():
    with pytest.raises(ValueError, match="tab-"):
        tables.markdown(pd.DataFrame({"v": [1]}), "c", "results")


def test_show_renders_markdown_for_the_book():
    shown = tables.show(pd.DataFrame({"v": [1]}), "c", "tab-c")
    assert shown._repr_markdown_().startswith("```{table}")
    assert repr(shown) == shown._repr_markdown_()           # plain text is formatted, not raw floats


def test_a_verdict_table_has_one_row_per_prediction_with_a_badge_per_reading():
    from dfsae.paper import tables

    rows = [("comparable", "energy (E > 0)", "failed",
             "FVU ratio, 95% intervals: β=1: 4.2× [3.6, 5.0], failed; β=10: 4.1× [3.7, 4.6], failed"),
            ("comparable", "similarity (s > 0)", "held",
             "FVU ratio, 95% intervals: β=1: 0.9× [0.8, 1.0], held"),
            ("no dead units", "energy (post-hoc)", "partly held",
             "95% intervals: digits: 0.01 [0.00, 0.02], held")]
    src = tables.verdicts(rows, "Verdicts.", "tab-v").source
    lines = [line for line in src.splitlines() if line.startswith("|")]
    # a column per reading, named before its parenthesis: "energy (post-hoc)" is the energy column
    assert lines[0] == "| prediction | energy | similarity | evidence |"
    assert len(lines) == 4                                 # header, rule, one row per prediction
    assert lines[2].startswith("| comparable | {bdg-danger}`failed` | {bdg-success}`held` | <details>")
    # folded: a one-line summary, then each reading in full and its intervals, one per line
    assert ("<summary>FVU ratio: 95% intervals</summary><em>energy (E &gt; 0)</em><br>β=1: 4.2× [3.6, 5.0], "
            "failed<br>β=10: 4.1× [3.7, 4.6], failed<br><em>similarity (s &gt; 0)</em><br>"
            "β=1: 0.9× [0.8, 1.0], held</details>") in lines[2]
    # not judged in a reading: a dash
    assert lines[3].startswith("| no dead units | {bdg-warning}`partly held` | – | "
                               "<details><summary>95% intervals</summary><em>energy (post-hoc)</em><br>"
                               "digits: 0.01 [0.00, 0.02], held</details>")


def test_a_verdict_table_refuses_rows_it_cannot_lay_out():
    from dfsae.paper import tables

    with pytest.raises(ValueError, match="rows must be"):
        tables.verdicts([], "c", "tab-v")
    with pytest.raises(ValueError, match="twice"):
        tables.verdicts([("p", "energy", "held", "e"), ("p", "energy", "failed", "e")], "c", "tab-v")
    # evidence in another shape is kept whole, escaped for the page
    src = tables.verdicts([("p", "energy", "held", "B > K at every point")], "c", "tab-v").source
    assert "<summary>details</summary><em>energy</em><br>B &gt; K at every point</details>" in src


def test_a_collapsed_table_is_the_same_table_inside_a_dropdown_with_its_finding():
    frame = pd.DataFrame({"token": ["a", "b"], "count": [3, 1]})
    plain = tables.markdown(frame, "c", "tab-long")
    folded = tables.markdown(frame, "c", "tab-long", collapsed="Every feature's best\n match is  'a'.")
    assert folded == "````{dropdown} Every feature's best match is 'a'.\n\n" + plain + "````\n"
    with pytest.raises(ValueError, match="collapsed"):
        tables.markdown(frame, "c", "tab-long", collapsed="  ")


def test_a_verdict_badge_is_coloured_by_what_the_verdict_says():
    assert tables.badge("held") == "{bdg-success}`held`"
    assert tables.badge("failed") == "{bdg-danger}`failed`"
    assert tables.badge(" partly  held ") == "{bdg-warning}`partly held`"
    assert tables.badge("inconclusive") == "{bdg-secondary}`inconclusive`"
    assert tables.badge("met") == "{bdg-success}`met`" and tables.badge("missed") == "{bdg-danger}`missed`"
    assert tables.badge("equivalent") == "{bdg-success}`equivalent`"
    assert tables.badge("different") == "{bdg-danger}`different`"
    assert tables.badge("undecided") == "{bdg-secondary}`undecided`"
    assert tables.badge("does not train the same models") == "{bdg-info}`does not train the same models`"
    for bad in ("", "a `role`"):
        with pytest.raises(ValueError, match="verdict must be"):
            tables.badge(bad)

"""ragsc.report: plain-text tables, CSV files with declared columns, grids of plot panels."""

import math

import numpy as np
import pytest
from PIL import Image

from ragsc.errors import InputError
from ragsc.report import Line, Panel, draw, plot_grid, table, write_csv


def test_table_aligns_columns():
    lines = table([["a", "1"], ["long name", "22"]], ["name", "n"]).splitlines()
    assert lines == ["name       n ", "---------  --", "a          1 ", "long name  22"]


def test_write_csv_uses_the_given_column_order(tmp_path):
    write_csv([{"b": 2, "a": "x"}, {"a": "", "b": 0.5}], tmp_path / "t.csv", ("b", "a"))
    assert (tmp_path / "t.csv").read_text() == "b,a\n2,x\n0.5,\n"


def test_write_csv_checks_every_row_first(tmp_path):
    with pytest.raises(InputError, match=r"row 1 does not match the columns \['a', 'b'\]: missing \['b'\], "
                                         r"unexpected \['c'\]"):
        write_csv([{"a": 1, "b": 2}, {"a": 1, "c": 3}], tmp_path / "t.csv", ("a", "b"))
    assert not (tmp_path / "t.csv").exists()


def test_plot_grid_size_and_png(tmp_path):
    grid = [[Panel(f"{i}{j}", [Line([0, 1, 2], [i, j, 1], "s", {"color": "C0", "marker": "o"})])
             for j in range(3)] for i in range(2)]
    path = plot_grid(grid, tmp_path / "g.png", title="grid", panel_size=(2.0, 1.5), dpi=50)
    assert path == tmp_path / "g.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (300, 150)  # 3 panels of 2 in across, 2 of 1.5 in down


@pytest.mark.parametrize("grid", [[], [[]], [[Panel("a", [])], []]])
def test_plot_grid_refuses_empty_or_ragged_grids(grid, tmp_path):
    with pytest.raises(InputError, match="rows of equal length"):
        plot_grid(grid, tmp_path / "g.png", title="", panel_size=(2, 2))
    assert not (tmp_path / "g.png").exists()


def test_draw_a_panel():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    draw(ax, Panel("BER", [Line([0, 5, 10], [0.1, 0.0, 1e-3], "measured", {"marker": "o", "ls": "none"}),
                           Line([0, 5], [0.2, 0.02], "theory")], ylabel="ber", log_y=True, legend=6))
    assert ax.get_yscale() == "log" and ax.get_title() == "BER" and ax.get_ylabel() == "ber"
    measured = ax.lines[0].get_ydata()
    assert measured[0] == 0.1 and math.isnan(measured[1]) and measured[2] == 1e-3  # a log axis cannot show 0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["measured", "theory"]

    ax = Figure().subplots()
    draw(ax, Panel("cosine", [Line([0, 5], [0.0, 0.9], "analog")]))
    assert ax.get_yscale() == "linear" and ax.get_legend() is None
    assert np.array_equal(ax.lines[0].get_ydata(), [0.0, 0.9])  # 0 stays on a linear axis

    with pytest.raises(InputError, match="line 'odd': 2 x values but 1 y values"):
        draw(Figure().subplots(), Panel("x", [Line([0, 1], [0.5], "odd")]))

"""progress.py: the one progress bar of conversion, training and evaluation."""
import io

import pytest

from keras_alexnet.progress import ProgressBar, duration


def test_lines_every_n_steps_and_always_the_last():
    stream = io.StringIO()
    bar = ProgressBar(5, title="epoch 1/2", items_per_update=8, mode="lines", every_steps=2,
                      stream=stream)
    for done in range(1, 6):
        bar.update(done, loss=1.5)
    bar.update(5, final=True)  # the end said twice is printed once
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["2/5", "4/5", "5/5"]
    assert "loss 1.5" in lines[0] and "img/s" in lines[0] and "ETA " in lines[0]
    assert "took 0:00:0" in lines[-1]


def test_bar_redraws_one_line_and_none_is_silent():
    stream = io.StringIO()
    bar = ProgressBar(2, title="train", mode="bar", stream=stream)
    bar.update(1)
    bar.update(2)
    text = stream.getvalue()
    assert text.startswith("\rtrain 1/2 [") and text.endswith("\n") and text.count("\n") == 1
    quiet = io.StringIO()
    silent = ProgressBar(2, mode="none", stream=quiet)
    silent.update(1)
    silent.update(2)
    assert quiet.getvalue() == ""
    with pytest.raises(ValueError, match="progress mode"):
        ProgressBar(2, mode="fancy")


def test_unknown_total_has_no_bar_and_ends_on_final():
    stream = io.StringIO()
    bar = ProgressBar(None, title="evaluate", mode="lines", every_seconds=3600, stream=stream)
    bar.update(10)  # the first line is due at once
    bar.update(20)  # not yet: an hour between lines
    bar.update(30, final=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("evaluate 10 ") and "[" not in lines[0]
    assert "ETA" not in lines[0] and lines[1].startswith("evaluate 30 ") and "took" in lines[1]
    assert duration(3725) == "1:02:05" and duration(float("inf")) == "?"

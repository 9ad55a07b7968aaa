"""The staged schedule of train(), hand-computed."""
import pytest

from rsna_detector.detector.schedule import Stage, default_schedule


def test_sixteen_epochs_is_the_notebook_schedule():
    assert default_schedule(16) == [
        Stage("heads", 2.0, 2, False),  # 2x LR, no augmentation, epochs 1-2
        Stage("all", 1.0, 6, True),  # LR, epochs 3-6
        Stage("all", 0.2, 16, True),  # LR / 5, epochs 7-16
    ]


@pytest.mark.parametrize("epochs, ends", [(8, [1, 3, 8]), (3, [1, 2, 3]), (32, [4, 12, 32])])
def test_schedule_scales_and_gives_each_stage_an_epoch(epochs, ends):
    assert [stage.until_epoch for stage in default_schedule(epochs)] == ends


def test_short_schedules_and_errors():
    assert default_schedule(1) == [Stage("heads", 2.0, 1, False)]
    assert [s.layers for s in default_schedule(2)] == ["heads", "all"]
    with pytest.raises(ValueError, match="epochs"):
        default_schedule(0)

"""Length.to_batches reckons as Determined's TrainUnit does."""

from __future__ import annotations

import pytest
from determined import pytorch as det_pytorch
from hypothesis import given
from hypothesis import strategies as st

from shim.config import NEVER, Length
from shim.errors import ShimError


@given(
    unit=st.sampled_from(["batches", "records"]),
    value=st.integers(min_value=-5, max_value=10**7),
    global_batch_size=st.integers(min_value=1, max_value=4096),
)
def test_batches_and_records_match_determineds_train_unit(
    unit: str, value: int, global_batch_size: int
) -> None:
    oracle = det_pytorch.TrainUnit._from_values(
        **{unit: value}, global_batch_size=global_batch_size
    )

    batches = Length(unit, value).to_batches(  # type: ignore[arg-type]
        batches_per_epoch=1, global_batch_size=global_batch_size
    )

    assert isinstance(oracle.value, int)
    if value < 1:
        # Determined divides its never (sys.maxsize) by the batch size: as unreachable as ours.
        assert batches == NEVER and oracle.value >= NEVER // global_batch_size
    else:
        assert batches == oracle.value


@given(
    value=st.integers(min_value=-5, max_value=10**4),
    batches_per_epoch=st.integers(min_value=1, max_value=10**4),
)
def test_epochs_count_the_batches_of_each_epoch_as_determineds_epoch_unit(
    value: int, batches_per_epoch: int
) -> None:
    oracle = det_pytorch.TrainUnit._from_values(epochs=value, global_batch_size=1)
    assert isinstance(oracle, det_pytorch.Epoch) and isinstance(oracle.value, int)

    batches = Length("epochs", value).to_batches(batches_per_epoch, global_batch_size=1)

    assert batches == (NEVER if oracle.value == NEVER else oracle.value * batches_per_epoch)


def test_records_fewer_than_a_batch_still_train_one_batch() -> None:
    assert Length("records", 10).to_batches(batches_per_epoch=5, global_batch_size=64) == 1


@pytest.mark.parametrize("unit", ["batches", "epochs", "records"])
def test_a_value_below_one_means_never(unit: str) -> None:
    length = Length(unit, 0)  # type: ignore[arg-type]

    assert length.never
    assert length.to_batches(batches_per_epoch=3, global_batch_size=2) == NEVER


def test_epochs_cannot_be_counted_over_an_empty_data_loader() -> None:
    with pytest.raises(ShimError, match=r"cannot count 2 epochs in batches: the training data"):
        Length("epochs", 2).to_batches(batches_per_epoch=0, global_batch_size=8)


def test_records_cannot_be_counted_without_a_batch_size() -> None:
    with pytest.raises(ShimError, match=r"cannot count 100 records .* global_batch_size 0"):
        Length("records", 100).to_batches(batches_per_epoch=3, global_batch_size=0)


def test_a_length_reads_and_writes_the_config_forms() -> None:
    assert Length.from_config(7) == Length("batches", 7)
    assert Length.from_config({"epochs": 2}) == Length("epochs", 2)
    assert Length("records", 9).to_dict() == {"records": 9}
    assert str(Length("epochs", 2)) == "2 epochs"

"""The cost estimate and the bytes-processed total: arithmetic with fixed numbers, the prices as settings, and how
the run summary and run.json show them."""

from dataclasses import replace

import pytest

from sluice import config as sluice_config
from sluice.errors import SluiceError
from sluice.observe.cost import GB, CostBasis, estimate
from sluice.observe.stats import RunStats


@pytest.fixture
def settings():
    saved = dict(sluice_config._overrides)
    yield sluice_config
    sluice_config._overrides.clear()
    sluice_config._overrides.update(saved)


BASIS = CostBasis(cores=8, memory_bytes=int(16 * GB), price_core_hour=0.5, price_gb_hour=0.25, price_storage_gb=0.1)


def test_each_part_is_quantity_times_time_times_price():
    cost = estimate(BASIS, wall_s=1800, storage_bytes=int(30 * GB))
    assert cost.compute == pytest.approx(8 * 0.5 * 0.5)  # 8 cores x half an hour x 0.5
    assert cost.memory == pytest.approx(16 * 0.5 * 0.25)  # 16 GB x half an hour x 0.25
    assert cost.storage == pytest.approx(30 * 0.1)  # 30 GB x 0.1
    assert cost.total == pytest.approx(2.0 + 2.0 + 3.0)


def test_no_time_and_no_bytes_cost_nothing():
    assert estimate(BASIS, wall_s=0, storage_bytes=0).total == 0


def test_stats_count_every_byte_moved_once():
    stats = RunStats("r1", input_bytes=1000, shuffle_bytes_written=200, shuffle_bytes_read=180, output_bytes=50)
    assert stats.bytes_processed == 1430
    stats.cost_basis = BASIS
    stats.wall_s = 3600
    cost = stats.cost()
    assert cost.storage_bytes == 1430
    assert cost.total == pytest.approx(8 * 0.5 + 16 * 0.25 + 1430 / GB * 0.1)


def test_basis_comes_from_the_settings_in_force(settings):
    current = settings.configure(num_threads=3, memory_budget="2GB", price_core_hour=1.5, price_gb_hour=0.75,
                                 price_storage_gb=0.01)
    stats = RunStats("r2")
    stats.set_cost_basis(current)
    assert stats.cost_basis == CostBasis(3, 2_000_000_000, 1.5, 0.75, 0.01)


def test_prices_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLUICE_PRICE_CORE_HOUR", "0.123")
    monkeypatch.setenv("SLUICE_PRICE_GB_HOUR", "0.0456")
    monkeypatch.setenv("SLUICE_PRICE_STORAGE_GB", "0.789")
    current = sluice_config._from_environment()
    assert (current.price_core_hour, current.price_gb_hour, current.price_storage_gb) == (0.123, 0.0456, 0.789)


@pytest.mark.parametrize("value", [-1, "cheap", float("nan")])
def test_a_price_must_be_a_number_at_least_zero(settings, value):
    with pytest.raises(SluiceError, match="price_core_hour"):
        settings.configure(price_core_hour=value)


def test_an_unreadable_price_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("SLUICE_PRICE_GB_HOUR", "five cents")
    with pytest.raises(SluiceError, match="SLUICE_PRICE_GB_HOUR"):
        sluice_config._from_environment()


def test_summary_shows_the_totals_and_the_cost_breakdown():
    stats = RunStats("r3", input_bytes=3 * 1024**2, shuffle_bytes_written=2 * 1024**2, shuffle_bytes_read=1024**2,
                     output_bytes=1024**2)
    stats.cost_basis = replace(BASIS, cores=4)
    stats.wall_s = 7200
    footer = "\n".join(stats.footer_lines())
    assert ("bytes processed: 7.0 MiB = input 3.0 MiB + shuffle write 2.0 MiB + shuffle read 1.0 MiB + output 1.0 MiB"
            in footer)
    cost = stats.cost()
    assert f"estimated cost: ${cost.total:,.2f}" in footer
    assert "4 cores" in footer and "$0.5/core-hour" in footer and "$0.25/GB-hour" in footer and "$0.1/GB" in footer


def test_summary_without_a_cost_basis_still_shows_the_bytes():
    stats = RunStats("r4", input_bytes=10)
    footer = "\n".join(stats.footer_lines())
    assert "bytes processed: 10 B" in footer and "estimated cost" not in footer


def test_run_json_holds_the_totals_and_the_cost():
    stats = RunStats("r5", input_bytes=100, shuffle_bytes_written=20, shuffle_bytes_read=20, output_bytes=10)
    stats.cost_basis = BASIS
    stats.wall_s = 36
    document = stats.to_dict()
    assert (document["input_bytes"], document["output_bytes"], document["bytes_processed"]) == (100, 10, 150)
    cost = document["cost"]
    assert cost["compute"] == pytest.approx(8 * 0.01 * 0.5)
    assert cost["memory"] == pytest.approx(16 * 0.01 * 0.25)
    assert cost["total"] == pytest.approx(cost["compute"] + cost["memory"] + cost["storage"])
    assert cost["price_core_hour"] == 0.5 and cost["cores"] == 8

"""Sizes, durations and CPU counts: what users write and the one value stored."""

from __future__ import annotations

import math

import pytest

from reconciler.model.quantities import (
    format_bytes,
    format_duration,
    parse_bytes,
    parse_cpus,
    parse_duration,
)

KI, MI, GI, TI, PI = 1024, 1024**2, 1024**3, 1024**4, 1024**5

# --- bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1048576, MI),
        ("1048576", MI),
        ("0", 0),
        ("1b", 1),
        ("1B", 1),
        ("1k", KI),
        ("1K", KI),
        ("1kb", KI),
        ("1KiB", KI),
        ("1ki", KI),
        ("512m", 512 * MI),
        ("512M", 512 * MI),
        ("512mb", 512 * MI),
        ("512MiB", 512 * MI),
        ("64Mi", 64 * MI),
        ("1.5g", GI + GI // 2),
        ("1.5GiB", GI + GI // 2),
        ("2T", 2 * TI),
        ("2ti", 2 * TI),
        ("1p", PI),
        (" 10 ", 10),
        ("1 m", MI),
        ("1.5", 1),
        ("1.9", 1),
        ("0.5k", 512),
        (1.9, 1),
        (2.0, 2),
        # exact arithmetic: no float rounding for large values written as text
        ("9007199254740993", 9007199254740993),
        ("1.1t", int(11 * TI / 10)),
    ],
)
def test_parse_bytes(text: object, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid size ''"),
        ("m", "invalid size 'm'"),
        ("-1", "invalid size '-1'"),
        ("1e3", "invalid size '1e3'"),
        ("1x", "invalid size '1x'"),
        ("1ib", "invalid size '1ib'"),
        ("1i", "invalid size '1i'"),
        ("1mm", "invalid size '1mm'"),
        ("1.5.5m", "invalid size '1.5.5m'"),
        (".5m", "invalid size '.5m'"),
        ("1,5m", "invalid size '1,5m'"),
        (-1, "a size cannot be negative"),
        (-0.5, "a size cannot be negative"),
        (True, "got a boolean"),
        (False, "got a boolean"),
        (None, "got NoneType"),
        ([512], "got list"),
        (float("inf"), "a size must be a finite number"),
        (float("nan"), "a size must be a finite number"),
    ],
)
def test_parse_bytes_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_bytes(value)
    assert message in str(info.value)


def test_parse_bytes_of_a_huge_number_is_exact_not_an_overflow() -> None:
    text = "9" * 400 + "p"
    assert parse_bytes(text) == int("9" * 400) * PI


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (1, "1"),
        (1023, "1023"),
        (KI, "1Ki"),
        (1536, "1536"),
        (MI + KI, "1025Ki"),
        (512 * MI, "512Mi"),
        (GI + GI // 2, "1536Mi"),
        (3 * GI, "3Gi"),
        (3 * TI, "3Ti"),
        (PI, "1024Ti"),
    ],
)
def test_format_bytes(value: int, expected: str) -> None:
    assert format_bytes(value) == expected


@pytest.mark.parametrize("value", [0, 1, 1000, KI, 1536, 6 * MI, 512 * MI, 5 * GI + 3 * KI, 7 * TI, PI, 12345678])
def test_format_bytes_round_trips(value: int) -> None:
    assert parse_bytes(format_bytes(value)) == value


# --- durations


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (30, 30.0),
        (1.5, 1.5),
        ("0", 0.0),
        ("10", 10.0),
        ("1.5", 1.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        (" 2m ", 120.0),
        ("2h45m30.5s", 9930.5),
        ("1d", 86400.0),
        ("1d12h", 129600.0),
        ("1us", 0.000001),
        ("1µs", 0.000001),
        ("1500us", 0.0015),
        ("100ns", 0.0),  # below the microsecond precision kept
        ("1500ns", 0.000002),
        ("1m1m", 120.0),  # Go accepts repeated units too
    ],
)
def test_parse_duration(value: object, expected: float) -> None:
    assert parse_duration(value) == expected


def test_parse_duration_rounds_away_float_noise() -> None:
    assert parse_duration(0.1 + 0.2) == 0.3
    assert parse_duration("0.1s") + parse_duration("0.2s") == pytest.approx(0.3)
    assert parse_duration("1.0000004s") == 1.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid duration ''"),
        ("s", "invalid duration 's'"),
        ("1m30", "invalid duration '1m30'"),
        ("-5s", "invalid duration '-5s'"),
        ("1y", "invalid duration '1y'"),
        ("1.5.5s", "invalid duration '1.5.5s'"),
        ("1H", "invalid duration '1H'"),
        ("P1D", "invalid duration 'P1D'"),
        (-1, "a duration cannot be negative"),
        (True, "got a boolean"),
        (None, "got NoneType"),
        ({"s": 1}, "got dict"),
        (float("inf"), "a duration must be a finite number"),
        (float("nan"), "a duration must be a finite number"),
        ("9" * 400 + "s", "a duration must be a finite number"),
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (0.000001, "0.001ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (3600.25, "1h0.25s"),
        (3661.5, "1h1m1.5s"),
        (5400, "1h30m"),
        (86400, "24h"),
        # every digit parse_duration keeps is shown
        (10.000001, "10.000001s"),
        (12.345678, "12.345678s"),
        # never "59m60s" from float noise
        (3599.9999999, "1h"),
        (1e-7, "0s"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0s",
        "1ms",
        "999ms",
        "1s",
        "1.5s",
        "10.000001s",
        "59.999999s",
        "1m",
        "1h1m1.5s",
        "3d",
        "1h0.25s",
    ],
)
def test_format_duration_round_trips(text: str) -> None:
    seconds = parse_duration(text)
    assert parse_duration(format_duration(seconds)) == seconds


# --- cpus


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (2, 2.0),
        (0.5, 0.5),
        ("2", 2.0),
        ("1.5", 1.5),
        (" 1.5 ", 1.5),
        ("500m", 0.5),
        ("1000m", 1.0),
        ("1500m", 1.5),
        ("1.5m", 0.0015),
        ("0.000000001", 0.000000001),
        (1 / 3, 0.333333333),
    ],
)
def test_parse_cpus(value: object, expected: float) -> None:
    assert parse_cpus(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "cpus must be greater than 0"),
        ("0", "cpus must be greater than 0"),
        ("0m", "cpus must be greater than 0"),
        (-1, "cpus must be greater than 0"),
        # rounds to 0 nano-CPUs, which Docker reads as "no limit"
        (1e-10, "cpus must be greater than 0"),
        ("0.0000000001", "cpus must be greater than 0"),
        ("-1", "invalid cpus '-1'"),
        ("abc", "invalid cpus 'abc'"),
        ("1 cpu", "invalid cpus '1 cpu'"),
        ("500M", "invalid cpus '500M'"),
        (True, "got a boolean"),
        (None, "got NoneType"),
        (float("inf"), "cpus must be a finite number"),
        (float("nan"), "cpus must be a finite number"),
    ],
)
def test_parse_cpus_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_cpus(value)
    assert message in str(info.value)


def test_parsers_return_the_canonical_types() -> None:
    assert type(parse_bytes("1k")) is int
    assert type(parse_bytes(1.5)) is int
    assert type(parse_duration(3)) is float
    assert type(parse_cpus(2)) is float
    assert math.isfinite(parse_duration("1h"))

"""Go's time.Format: layouts written as the reference time ``Mon Jan 2 15:04:05 MST 2006``.

consul-template's ``timestamp "2006-01-02"`` passes its argument to time.Format, so the layout
language is Go's, not strftime's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

RFC3339 = "2006-01-02T15:04:05Z07:00"

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
]

# Longest first, so that "January" wins over "Jan" and "2006" over "2".
_ZONE_CHUNKS = (
    "Z07:00:00",
    "-07:00:00",
    "Z070000",
    "-070000",
    "Z07:00",
    "-07:00",
    "Z0700",
    "-0700",
    "Z07",
    "-07",
)


def _zone(dt: datetime, chunk: str) -> str:
    offset = dt.utcoffset() or timedelta(0)
    seconds = int(offset.total_seconds())
    if chunk.startswith("Z") and seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    body = chunk[1:]
    if body == "07":
        return f"{sign}{hours:02d}"
    if body == "0700":
        return f"{sign}{hours:02d}{minutes:02d}"
    if body == "07:00":
        return f"{sign}{hours:02d}:{minutes:02d}"
    if body == "070000":
        return f"{sign}{hours:02d}{minutes:02d}{secs:02d}"
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"


def _fraction(dt: datetime, chunk: str) -> str:
    digits = len(chunk) - 1
    text = f"{dt.microsecond:06d}000"[:digits]
    if chunk[1] == "9":
        text = text.rstrip("0")
        if not text:
            return ""
    return chunk[0] + text


def _hour12(hour: int) -> int:
    return hour % 12 or 12


def go_format(dt: datetime, layout: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(layout):
        length, text = _next_chunk(dt, layout, index)
        if length:
            out.append(text)
            index += length
        else:
            out.append(layout[index])
            index += 1
    return "".join(out)


# The other layout elements, in the order they are tried: longest first where one is the start
# of another. Each gives its value of a datetime; only the one that matches is computed.
_CHUNKS: tuple[tuple[str, Callable[[datetime], str]], ...] = (
    ("January", lambda dt: _MONTHS[dt.month - 1]),
    ("Jan", lambda dt: _MONTHS[dt.month - 1][:3]),
    ("Monday", lambda dt: _DAYS[dt.weekday()]),
    ("Mon", lambda dt: _DAYS[dt.weekday()][:3]),
    ("MST", lambda dt: dt.tzname() or "UTC"),
    ("2006", lambda dt: f"{dt.year:04d}"),
    ("002", lambda dt: f"{dt.timetuple().tm_yday:03d}"),
    ("__2", lambda dt: f"{dt.timetuple().tm_yday:>3d}"),
    ("_2", lambda dt: f"{dt.day:>2d}"),
    ("01", lambda dt: f"{dt.month:02d}"),
    ("02", lambda dt: f"{dt.day:02d}"),
    ("03", lambda dt: f"{_hour12(dt.hour):02d}"),
    ("04", lambda dt: f"{dt.minute:02d}"),
    ("05", lambda dt: f"{dt.second:02d}"),
    ("06", lambda dt: f"{dt.year % 100:02d}"),
    ("15", lambda dt: f"{dt.hour}"),
    ("PM", lambda dt: "PM" if dt.hour >= 12 else "AM"),
    ("pm", lambda dt: "pm" if dt.hour >= 12 else "am"),
    ("1", lambda dt: f"{dt.month}"),
    ("2", lambda dt: f"{dt.day}"),
    ("3", lambda dt: f"{_hour12(dt.hour)}"),
    ("4", lambda dt: f"{dt.minute}"),
    ("5", lambda dt: f"{dt.second}"),
)


def _next_chunk(dt: datetime, layout: str, index: int) -> tuple[int, str]:
    """The length of the layout element at ``layout[index]`` and its value, or (0, "")."""
    for chunk in _ZONE_CHUNKS:
        if layout.startswith(chunk, index):
            return len(chunk), _zone(dt, chunk)
    following = index + 1
    if layout[index] in ".," and following < len(layout) and layout[following] in "09":
        digit = layout[following]
        end = following
        while end < len(layout) and layout[end] == digit:
            end += 1
        # A fractional second only counts when no digit follows the run.
        if end == len(layout) or not layout[end].isdigit():
            return end - index, _fraction(dt, layout[index:end])
    for chunk, value in _CHUNKS:
        if layout.startswith(chunk, index):
            # As in Go, "Jan" and "Mon" followed by a lower-case letter are plain text.
            after = index + len(chunk)
            if chunk in ("Jan", "Mon") and after < len(layout) and layout[after].islower():
                continue
            return len(chunk), value(dt)
    return 0, ""

"""Go's time.Format: layouts written as the reference time ``Mon Jan 2 15:04:05 MST 2006``.

consul-template's ``timestamp "2006-01-02"`` passes its argument to time.Format, so the layout
language is Go's, not strftime's.
"""

from __future__ import annotations

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
        rest = layout[index:]
        chunk, text = _next_chunk(dt, rest)
        if chunk:
            out.append(text)
            index += len(chunk)
        else:
            out.append(layout[index])
            index += 1
    return "".join(out)


def _next_chunk(dt: datetime, rest: str) -> tuple[str, str]:
    """The layout element at the start of ``rest`` and its value, or ("", "")."""
    for chunk in _ZONE_CHUNKS:
        if rest.startswith(chunk):
            return chunk, _zone(dt, chunk)
    if rest[0] in ".," and len(rest) > 1 and rest[1] in "09":
        digit = rest[1]
        end = 1
        while end < len(rest) and rest[end] == digit:
            end += 1
        # A fractional second only counts when no digit follows the run.
        if end == len(rest) or not rest[end].isdigit():
            chunk = rest[:end]
            return chunk, _fraction(dt, chunk)
    simple: list[tuple[str, str]] = [
        ("January", _MONTHS[dt.month - 1]),
        ("Jan", _MONTHS[dt.month - 1][:3]),
        ("Monday", _DAYS[dt.weekday()]),
        ("Mon", _DAYS[dt.weekday()][:3]),
        ("MST", dt.tzname() or "UTC"),
        ("2006", f"{dt.year:04d}"),
        ("002", f"{dt.timetuple().tm_yday:03d}"),
        ("__2", f"{dt.timetuple().tm_yday:>3d}"),
        ("_2", f"{dt.day:>2d}"),
        ("01", f"{dt.month:02d}"),
        ("02", f"{dt.day:02d}"),
        ("03", f"{_hour12(dt.hour):02d}"),
        ("04", f"{dt.minute:02d}"),
        ("05", f"{dt.second:02d}"),
        ("06", f"{dt.year % 100:02d}"),
        ("15", f"{dt.hour}"),
        ("PM", "PM" if dt.hour >= 12 else "AM"),
        ("pm", "pm" if dt.hour >= 12 else "am"),
        ("1", f"{dt.month}"),
        ("2", f"{dt.day}"),
        ("3", f"{_hour12(dt.hour)}"),
        ("4", f"{dt.minute}"),
        ("5", f"{dt.second}"),
    ]
    for chunk, value in simple:
        if rest.startswith(chunk):
            # As in Go, "Jan" and "Mon" followed by a lower-case letter are plain text.
            if chunk in ("Jan", "Mon") and len(rest) > 3 and rest[3].islower():
                continue
            return chunk, value
    return "", ""

"""Errors of the template engine.

Messages read like Go's text/template so an error from a template that also runs under Vault
Agent looks the same in both: ``template: NAME:LINE: ...`` for parse errors and
``template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`` for execution errors. No message
ever carries secret data: where Go would print a value, the engine prints ``[redacted]``.
"""

from __future__ import annotations


class TemplateError(Exception):
    """A template could not be parsed or rendered. ``str(error)`` is the Go-style message."""


class TemplateParseError(TemplateError):
    """The template text is not valid Go template syntax (or names an unknown function)."""


class TemplateExecError(TemplateError):
    """Rendering stopped: a missing key under error-on-missing-key, a failing function, etc."""


class FunctionError(Exception):
    """Raised by a template function; execution reports it as ``error calling NAME: MESSAGE``.

    The message must not contain secret data: functions say what went wrong, not with which value.
    """


REDACTED = "[redacted]"

"""Go text/template with consul-template's functions, in pure Python.

Templates written for Vault Agent render here byte for byte as they do there::

    template = parse("db", '{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}')
    template.dependencies()   # (Dependency(kind="secret", path="database/creds/app", params=()),)
    template.render(backend=agent_backend)

The engine does no network and no file I/O (except the ``file`` function); Vault calls go to the
:class:`SecretBackend` the caller passes in, and its exceptions reach the caller unchanged.

Compatibility, checked against Go 1.19's text/template on the corpus in tests/templates/cases:

- Vault's numbers are ``json.Number`` under Vault Agent (text that prints as written, is true even
  when 0, compares as a string). ``Secret.data`` ints and floats are turned into
  :class:`JsonNumber` to behave the same; see ``values`` for the one nuance (floats print as
  Python's shortest repr, which is the JSON literal for plain decimals such as 0.75).
- Later Go, as in current Vault Agent builds: ``{{range 3}}`` (Go 1.22), ``{{else with}}``
  (Go 1.23), ``\\b`` and ``\\f`` in JSON strings (Go 1.22).
- Missing keys follow consul-template: ``missingkey=zero``, or ``missingkey=error`` when asked.
- Where Go fails, a few things work instead: comparing a json.Number with a number compares
  numbers; a json.Number is accepted where a string or int is wanted; a list of strings is
  accepted where ``[]string`` or ``[]interface {}`` is wanted; arithmetic takes json.Numbers.
- Error messages are Go's, except that values are printed as ``[redacted]`` and that regexp, JSON
  and YAML syntax errors use Python's wording. Template recursion stops at depth 64.
"""

from agent.templates.backend import Dependency, Secret, SecretBackend
from agent.templates.errors import TemplateError
from agent.templates.template import Template, parse, render
from agent.templates.values import JsonNumber

__all__ = [
    "Dependency",
    "JsonNumber",
    "Secret",
    "SecretBackend",
    "Template",
    "TemplateError",
    "parse",
    "render",
]

"""Go text/template with consul-template's functions, in pure Python.

Templates written for Vault Agent render here byte for byte as they do there::

    template = parse("db", '{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}')
    template.dependencies()   # (Dependency(kind="secret", path="database/creds/app", params=()),)
    template.render(backend=agent_backend)

The engine does no network and no file I/O (except the ``file`` function); Vault calls go to the
:class:`SecretBackend` the caller passes in.
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

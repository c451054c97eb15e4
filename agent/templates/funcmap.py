"""Every function a template can call, by name: Go's builtins, consul-template's, sprig_*."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agent.templates.consul_functions import CONSUL_FUNCTIONS
from agent.templates.funcspec import Function
from agent.templates.go_builtins import GO_BUILTINS
from agent.templates.sprig_functions import SPRIG_FUNCTIONS
from agent.templates.vault_functions import VAULT_FUNCTIONS

FUNCTIONS: Mapping[str, Function] = MappingProxyType(
    {
        function.name: function
        for function in (*GO_BUILTINS, *CONSUL_FUNCTIONS, *VAULT_FUNCTIONS, *SPRIG_FUNCTIONS)
    }
)

"""The diff that makes the patch: applying it to the original always gives the mutated copy."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import (
    SCHEMA,
    AgentConfig,
    Choice,
    Flag,
    Integer,
    Kind,
    Maybe,
    Number,
    Record,
    Records,
    Text,
    TextMap,
    defaults,
    to_dict,
)
from tests.webhook.support import SETTINGS, annotated, app_container, make_pod
from webhook.annotations import parse
from webhook.injection import inject
from webhook.patch import diff

# 0, 1, 0.0, 1.0, false and true: equal to Python, different JSON.
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0])
    | st.text("ab/~", max_size=3)
)
documents = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text("ab/~", max_size=3), children, max_size=4)
        | st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c", "d"]), "v": children}),
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _json(document: Any) -> str:
    """The document as JSON text: ``==`` takes true for 1 and 1.0 for 1, JSON does not."""
    return json.dumps(document, sort_keys=True)


@settings(max_examples=400, deadline=None)
@given(documents, documents)
def test_applying_the_diff_to_any_document_gives_the_other(original: Any, mutated: Any) -> None:
    before = _json(original)
    patched = jsonpatch.apply_patch(original, diff(original, mutated))
    assert _json(patched) == _json(mutated)
    assert _json(original) == before


@pytest.mark.parametrize(
    ("original", "mutated"),
    [
        pytest.param([1], [True, 1], id="true inserted before an equal 1"),
        pytest.param([0, 5], [False], id="false left where 0 was"),
        pytest.param({"a": [1, 2]}, {"a": [1.0, 2, 3]}, id="a float that equals an int"),
        pytest.param([{"x": 1}, 2], [{"x": True}], id="a nested boolean"),
    ],
)
def test_values_that_python_finds_equal_but_json_does_not_are_patched(
    original: Any, mutated: Any
) -> None:
    patched = jsonpatch.apply_patch(original, diff(original, mutated))
    assert _json(patched) == _json(mutated)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True, max_size=5), st.data())
def test_named_lists_with_items_added_at_either_end(names: list[str], data: st.DataObject) -> None:
    original = [{"name": name, "mounts": [1]} for name in names]
    changed = [dict(item, mounts=[1, 2]) if data.draw(st.booleans()) else item for item in original]
    extra = [{"name": f"x{n}"} for n in range(data.draw(st.integers(1, 2)))]
    mutated = extra + changed if data.draw(st.booleans()) else changed + extra
    operations = diff(original, mutated)
    assert jsonpatch.apply_patch(original, operations) == mutated
    # Items are added, never the whole list replaced.
    assert all(operation["op"] == "add" for operation in operations)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="basic"),
        pytest.param(annotated(agent_init_first="true"), id="init first"),
        pytest.param(annotated(agent_native_sidecar="true"), id="native sidecar"),
        pytest.param(annotated(agent_inject_signal_db="SIGHUP:app"), id="process namespace"),
    ],
)
def test_the_patch_of_an_injection_rebuilds_the_mutated_pod(extra: dict[str, str]) -> None:
    pod = make_pod(
        {**annotated(agent_inject="true", role="app", agent_inject_secret_db="kv/db"), **extra},
        containers=[app_container("a"), app_container("b")],
        init_containers=[app_container("migrate")],
    )
    spec = parse(pod, SETTINGS, namespace="shop").spec
    assert spec is not None
    mutated = inject(pod, spec)
    assert jsonpatch.apply_patch(pod, diff(pod, mutated)) == mutated
    assert diff(pod, pod) == []


def test_the_injected_config_is_what_the_parser_made_and_leaves_out_defaults() -> None:
    pod = make_pod(
        annotated(
            agent_inject="true",
            role="app",
            agent_inject_secret_db="kv/db",
            agent_inject_signal_db="SIGHUP:nginx",
            auth_config_audience="vault",
        )
    )
    spec = parse(pod, SETTINGS, namespace="shop").spec
    assert spec is not None
    assert spec.agent_config is not None
    mutated = inject(pod, spec)
    (sidecar,) = [c for c in mutated["spec"]["containers"] if c["name"] == "vault-agent"]
    document = next(item["value"] for item in sidecar["env"] if item["name"] == "VSI_AGENT_CONFIG")
    assert AgentConfig.from_json(document) == spec.agent_config
    written = json.loads(document)
    assert written["version"] == 1
    assert "lifecycle" not in written  # every lifecycle field is at its default
    assert "left_delimiter" not in written["templates"][0]  # {{, the default
    assert written["templates"][0]["signal"] == {"process_name": "nginx", "signal": "SIGHUP"}
    assert len(document) < len(json.dumps(spec.agent_config.to_dict())) / 2


def _kind_strategy(kind: Kind) -> st.SearchStrategy[Any]:
    """Any value of a field of ``kind``: non-ASCII text, NaN and infinities included."""
    if isinstance(kind, Maybe):
        return _kind_strategy(kind.inner) | st.none()
    if isinstance(kind, Record):
        return _every_field(kind.record)
    if isinstance(kind, Records):
        return st.lists(_every_field(kind.record), max_size=3).map(tuple)
    if isinstance(kind, Choice):
        return st.sampled_from(kind.options)
    if isinstance(kind, TextMap):
        return st.dictionaries(st.text(), st.text(), max_size=3)
    simple: dict[type[Kind], st.SearchStrategy[Any]] = {
        Text: st.text(),
        Flag: st.booleans(),
        Integer: st.integers(),
        Number: st.floats(),
    }
    return simple[type(kind)]


def _every_field(cls: type[Any]) -> st.SearchStrategy[Any]:
    """``cls`` with every field drawn (st.builds alone leaves defaulted fields at their default),
    nested configuration classes included; a defaulted field keeps its default now and then."""
    found = defaults(cls)
    drawn: dict[str, Any] = {}
    for field in SCHEMA[cls]:
        strategy = _kind_strategy(field.kind)
        if field.name in found:
            strategy = st.just(found[field.name]) | strategy
        drawn[field.name] = strategy
    return st.builds(cls, **drawn)


def _defaults_written(document: Any, cls: type[Any]) -> list[str]:
    """Fields written although equal to their default (the version is always written)."""
    found = []
    known = defaults(cls)
    for field in SCHEMA[cls]:
        if field.name not in document:
            continue
        value = document[field.name]
        if (
            field.name in known
            and field.name != "version"
            and json.dumps(value) == json.dumps(to_dict(known[field.name]))
        ):
            found.append(field.name)
        kind = field.kind.inner if isinstance(field.kind, Maybe) else field.kind
        if isinstance(kind, Records):
            for item in value:
                found += _defaults_written(item, kind.record)
        elif isinstance(kind, Record) and value is not None:
            found += _defaults_written(value, kind.record)
    return found


# Any values, not only what the parser makes: non-ASCII text, NaN and infinities, params.
any_agent_config = _every_field(AgentConfig)


@settings(max_examples=300, deadline=None)
@given(any_agent_config)
def test_the_config_document_leaves_out_defaults_and_loses_nothing(config: AgentConfig) -> None:
    written = config.to_json()
    assert written == config.to_json()  # the same config, the same bytes (and patch)
    document = json.loads(written)
    assert document["version"] == config.version
    assert _defaults_written(document, AgentConfig) == []
    # Read back by types alone (from_dict would also hold random values to validate's rules):
    # every left-out field comes back as its __init__ default, every written one as it was.
    problems: list[str] = []
    read_back = Record(AgentConfig).read(document, "config", problems)
    assert problems == []
    # json.dumps compares NaN, which == does not.
    assert json.dumps(to_dict(read_back), sort_keys=True) == json.dumps(
        to_dict(config), sort_keys=True
    )

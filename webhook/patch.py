"""RFC 6902 JSON patch by diffing the original pod against the mutated copy (pure).

``jsonpatch.make_patch`` computes the same kind of diff but spends about half a millisecond on a
realistic pod (it serializes list members to compare them), half of the whole admission. This
diff is specialised for what an injection does: the mutated copy shares every untouched subtree
with the original (an identity check skips it), and lists change by insertions or removals of a
contiguous run (appended containers, volumes and mounts; the init container put first), else the
list is replaced whole. The operations come in the mutated object's key order, so the same input
always gives the same patch. The tests check that applying the patch yields the mutated pod.
"""

from __future__ import annotations

from typing import Any, Final

Operation = dict[str, Any]

# Not a JSON value: marks a key the original lacks (null is a value).
_ABSENT: Final = object()


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def diff(original: Any, mutated: Any) -> list[Operation]:
    operations: list[Operation] = []
    _diff(original, mutated, "", operations)
    return operations


def _diff(original: Any, mutated: Any, path: str, operations: list[Operation]) -> None:
    if original is mutated:
        return
    if isinstance(original, dict) and isinstance(mutated, dict):
        start = len(operations)
        kept = 0
        for key, value in mutated.items():
            before = original.get(key, _ABSENT)
            if before is _ABSENT:
                operations.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})
                continue
            kept += 1
            # Most members are shared with the original: skip them before building a path.
            if before is not value:
                _diff(before, value, f"{path}/{_escape(key)}", operations)
        # An injection removes no key, so every key of the original was seen above; otherwise
        # the removals go first, in the original's order.
        if kept != len(original):
            operations[start:start] = [
                {"op": "remove", "path": f"{path}/{_escape(key)}"}
                for key in original
                if key not in mutated
            ]
        return
    if isinstance(original, list) and isinstance(mutated, list):
        _diff_list(original, mutated, path, operations)
        return
    if type(original) is not type(mutated) or original != mutated:
        operations.append({"op": "replace", "path": path, "value": mutated})


def _same(original: Any, mutated: Any) -> bool:
    """JSON equality: unlike ``==``, ``true`` is not ``1`` and ``1.0`` is not ``1``, which a patch
    must keep apart."""
    if original is mutated:
        return True
    if type(original) is not type(mutated):
        return False
    if isinstance(original, dict):
        return original.keys() == mutated.keys() and all(
            _same(value, mutated[key]) for key, value in original.items()
        )
    if isinstance(original, list):
        return len(original) == len(mutated) and all(map(_same, original, mutated))
    return bool(original == mutated)


def _names(items: list[Any]) -> list[str] | None:
    names: list[str] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            return None
        names.append(name)
    return names


def _named_insertion(
    original: list[Any], mutated: list[Any], path: str, operations: list[Operation]
) -> bool:
    """Containers, volumes, mounts: items keep their names; ours are added at one end while the
    pod's own may change in place (a container gains a mount). Diff by name, not by value."""
    old_names, new_names = _names(original), _names(mutated)
    if old_names is None or new_names is None:
        return False
    added = len(mutated) - len(original)
    if new_names[: len(original)] == old_names:
        for index, before in enumerate(original):
            after = mutated[index]
            if before is not after:
                _diff(before, after, f"{path}/{index}", operations)
        operations.extend(
            {"op": "add", "path": f"{path}/{index}", "value": mutated[index]}
            for index in range(len(original), len(mutated))
        )
        return True
    if new_names[added:] == old_names:
        operations.extend(
            {"op": "add", "path": f"{path}/{index}", "value": mutated[index]}
            for index in range(added)
        )
        for index, before in enumerate(original):
            after = mutated[index + added]
            if before is not after:
                _diff(before, after, f"{path}/{index + added}", operations)
        return True
    return False


def _diff_list(
    original: list[Any], mutated: list[Any], path: str, operations: list[Operation]
) -> None:
    old_length, new_length = len(original), len(mutated)
    if old_length == new_length:
        for index, (before, after) in enumerate(zip(original, mutated, strict=True)):
            if before is not after:
                _diff(before, after, f"{path}/{index}", operations)
        return
    if new_length > old_length and _named_insertion(original, mutated, path, operations):
        return
    prefix = 0
    shortest = min(old_length, new_length)
    while prefix < shortest and _same(original[prefix], mutated[prefix]):
        prefix += 1
    if new_length > old_length:
        inserted = new_length - old_length
        if _same(original[prefix:], mutated[prefix + inserted :]):
            operations.extend(
                {"op": "add", "path": f"{path}/{index}", "value": mutated[index]}
                for index in range(prefix, prefix + inserted)
            )
            return
    else:
        removed = old_length - new_length
        if _same(original[prefix + removed :], mutated[prefix:]):
            operations.extend({"op": "remove", "path": f"{path}/{prefix}"} for _ in range(removed))
            return
    operations.append({"op": "replace", "path": path, "value": mutated})

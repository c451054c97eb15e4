"""Parse tree nodes, as in text/template/parse/node.go.

Each node knows its position (an index into the template text) and prints itself as Go does,
because execution errors quote the node: ``executing "db" at <.Data.password>: ...``. Nodes are
frozen: a parsed template is shared by every render, in any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.templates.gofmt import quote


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class TextNode(Node):
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    nodes: tuple[Node, ...]

    def __str__(self) -> str:
        return "".join(str(node) for node in self.nodes)


@dataclass(frozen=True, slots=True)
class IdentifierNode(Node):
    ident: str

    def __str__(self) -> str:
        return self.ident


@dataclass(frozen=True, slots=True)
class VariableNode(Node):
    # The variable name (with its $) and then any field names: $x.a.b -> ("$x", "a", "b").
    ident: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(frozen=True, slots=True)
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass(frozen=True, slots=True)
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass(frozen=True, slots=True)
class FieldNode(Node):
    ident: tuple[str, ...]

    def __str__(self) -> str:
        return "".join("." + name for name in self.ident)


@dataclass(frozen=True, slots=True)
class BoolNode(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class NumberNode(Node):
    """A number literal, held as every Go type that can represent it (Go's ideal constants)."""

    text: str
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    is_complex: bool = False
    int64: int = 0
    uint64: int = 0
    float64: float = 0.0
    complex128: complex = 0j

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class StringNode(Node):
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(frozen=True, slots=True)
class PipeNode(Node):
    line: int
    is_assign: bool
    decl: tuple[VariableNode, ...]
    cmds: tuple[CommandNode, ...]

    def __str__(self) -> str:
        text = ""
        if self.decl:
            text = ", ".join(str(variable) for variable in self.decl) + " := "
        return text + " | ".join(str(command) for command in self.cmds)


@dataclass(frozen=True, slots=True)
class CommandNode(Node):
    args: tuple[Node, ...]

    def __str__(self) -> str:
        parts = []
        for arg in self.args:
            if isinstance(arg, PipeNode):
                parts.append("(" + str(arg) + ")")
            else:
                parts.append(str(arg))
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ChainNode(Node):
    """A term followed by field accesses: (pipeline).Field or $x.Field after a function call."""

    node: Node
    fields: tuple[str, ...]

    def __str__(self) -> str:
        text = "(" + str(self.node) + ")" if isinstance(self.node, PipeNode) else str(self.node)
        return text + "".join("." + name for name in self.fields)


@dataclass(frozen=True, slots=True)
class ActionNode(Node):
    line: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(frozen=True, slots=True)
class BranchNode(Node):
    line: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    keyword = ""

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            text += "{{else}}" + str(self.else_list)
        return text + "{{end}}"


@dataclass(frozen=True, slots=True)
class IfNode(BranchNode):
    keyword = "if"


@dataclass(frozen=True, slots=True)
class RangeNode(BranchNode):
    keyword = "range"


@dataclass(frozen=True, slots=True)
class WithNode(BranchNode):
    keyword = "with"


@dataclass(frozen=True, slots=True)
class BreakNode(Node):
    line: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(frozen=True, slots=True)
class ContinueNode(Node):
    line: int

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(frozen=True, slots=True)
class TemplateNode(Node):
    line: int
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        text = "{{template " + quote(self.name)
        if self.pipe is not None:
            text += " " + str(self.pipe)
        return text + "}}"


@dataclass(frozen=True, slots=True)
class EndNode(Node):
    """{{end}}: ends a list while parsing; never in a finished tree."""

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(frozen=True, slots=True)
class ElseNode(Node):
    """{{else}}: ends a list while parsing; never in a finished tree."""

    line: int

    def __str__(self) -> str:
        return "{{else}}"


def is_empty_tree(node: Node | None) -> bool:
    """parse.IsEmptyTree: nothing but spaces (and comments) in it."""
    if node is None:
        return True
    if isinstance(node, ListNode):
        return all(is_empty_tree(child) for child in node.nodes)
    if isinstance(node, TextNode):
        return node.text.strip(" \t\n\r\v\f\x85\xa0") == ""
    return False

"""Template execution, a port of text/template/exec.go over the value model of ``values``.

Go's rules that users can see are kept: missing keys (consul-template runs Go with
``missingkey=zero``, or ``missingkey=error``), ``<no value>``, nil pointer errors on a missing
key's fields, and/or returning the deciding value, variable scoping, break/continue, template
invocation without dynamic scope, and the error messages with their line:column and node.

Deliberate differences: Go 1.22's range over an integer (the 1.19 oracle rejects it); a template
depth limit of 64 rather than 100000 (Python recursion); error messages never show values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NoReturn

from agent.templates.errors import REDACTED, FunctionError, TemplateExecError
from agent.templates.funcspec import ArgType, Function, RenderContext
from agent.templates.gofmt import format_value, quote
from agent.templates.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)
from agent.templates.values import (
    MISSING,
    GoStringSlice,
    JsonNumber,
    NilPointer,
    is_true,
    sorted_map_items,
    struct_view,
    type_name,
)

MAX_TEMPLATE_DEPTH: Final = 64


class _NoFinal:
    """Go's missingVal: no value is coming from the previous pipeline stage."""

    __slots__ = ()


_NO_FINAL: Final = _NoFinal()


class _Break(Exception):
    """{{break}}: unwinds to the enclosing range, as Go's walkBreak panic does."""


class _Continue(Exception):
    """{{continue}}: unwinds to the next iteration, as Go's walkContinue panic does."""


def _json_number_float(number: JsonNumber) -> float:
    try:
        return float(number)
    except ValueError:
        raise FunctionError(f"strconv.ParseFloat: parsing {REDACTED}: invalid syntax") from None


def _json_number_int(number: JsonNumber) -> int:
    try:
        return int(number)
    except ValueError:
        raise FunctionError(f"strconv.ParseInt: parsing {REDACTED}: invalid syntax") from None


# json.Number's methods, which templates can call: {{ .Data.port.Int64 }}.
_JSON_NUMBER_METHODS: Final[dict[str, Any]] = {
    "String": str,
    "Float64": _json_number_float,
    "Int64": _json_number_int,
}


class Program:
    """A parsed template set: the trees by name, and what execution needs to report errors."""

    __slots__ = ("functions", "name", "text", "trees")

    def __init__(
        self,
        *,
        name: str,
        text: str,
        trees: Mapping[str, ListNode],
        functions: Mapping[str, Function],
    ) -> None:
        self.name = name
        self.text = text
        self.trees = trees
        self.functions = functions

    def execute(self, dot: Any, *, context: RenderContext, missing_key_error: bool) -> str:
        state = _State(self, context=context, missing_key_error=missing_key_error)
        out: list[str] = []
        root = self.trees.get(self.name)
        if root is None:
            state.errorf(f"{quote(self.name)} is an incomplete or empty template")
        state.vars.append(("$", dot))
        state.walk(dot, root, out=out)
        return "".join(out)


class _State:
    """One execution: variables, the node being evaluated (for errors), template depth."""

    __slots__ = (
        "context",
        "depth",
        "dot_is_interface",
        "missing_key_error",
        "node",
        "program",
        "template",
        "vars",
    )

    def __init__(
        self, program: Program, *, context: RenderContext, missing_key_error: bool
    ) -> None:
        self.program = program
        self.template = program.name
        self.context = context
        self.missing_key_error = missing_key_error
        self.vars: list[tuple[str, Any]] = []
        self.node: Node | None = None
        self.depth = 0
        # Whether dot is an element of a []interface{} or map[string]interface{} (a range
        # element): only error messages about its fields can tell.
        self.dot_is_interface = False

    # -- errors -----------------------------------------------------------------------------

    def location(self, node: Node) -> str:
        text = self.program.text[: node.pos]
        line = 1 + text.count("\n")
        column = len(text[text.rfind("\n") + 1 :].encode("utf-8", "surrogateescape"))
        return f"{self.program.name}:{line}:{column}"

    def errorf(self, message: str) -> NoReturn:
        if self.node is None:
            raise TemplateExecError(f"template: {self.template}: {message}")
        raise TemplateExecError(
            f"template: {self.location(self.node)}: executing {quote(self.template)} "
            f"at <{self.node}>: {message}"
        )

    # -- variables --------------------------------------------------------------------------

    def var_value(self, name: str) -> Any:
        for index in range(len(self.vars) - 1, -1, -1):
            if self.vars[index][0] == name:
                return self.vars[index][1]
        return self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for index in range(len(self.vars) - 1, -1, -1):
            if self.vars[index][0] == name:
                self.vars[index] = (name, value)
                return
        self.errorf(f"undefined variable: {name}")

    # -- walking ----------------------------------------------------------------------------

    def walk(self, dot: Any, node: Node, *, out: list[str]) -> None:
        self.node = node
        node_type = type(node)
        if node_type is TextNode:
            out.append(node.text)  # type: ignore[attr-defined]
        elif node_type is ActionNode:
            pipe = node.pipe  # type: ignore[attr-defined]
            value = self.eval_pipeline(dot, pipe)
            if not pipe.decl:
                self.print_value(node, value, out=out)
        elif node_type is ListNode:
            for child in node.nodes:  # type: ignore[attr-defined]
                self.walk(dot, child, out=out)
        elif node_type is IfNode or node_type is WithNode:
            self.walk_if_or_with(dot, node, out=out)  # type: ignore[arg-type]
        elif node_type is RangeNode:
            self.walk_range(dot, node, out=out)  # type: ignore[arg-type]
        elif node_type is TemplateNode:
            self.walk_template(dot, node, out=out)  # type: ignore[arg-type]
        elif node_type is BreakNode:
            raise _Break
        elif node_type is ContinueNode:
            raise _Continue
        else:
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Any, node: BranchNode, *, out: list[str]) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if is_true(value):
                if type(node) is WithNode:
                    saved, self.dot_is_interface = self.dot_is_interface, False
                    try:
                        self.walk(value, node.list, out=out)
                    finally:
                        self.dot_is_interface = saved
                else:
                    self.walk(dot, node.list, out=out)
            elif node.else_list is not None:
                self.walk(dot, node.else_list, out=out)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode, *, out: list[str]) -> None:
        self.node = node
        outer_mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            mark = len(self.vars)
            decl_count = len(node.pipe.decl)
            saved_dot_is_interface = self.dot_is_interface
            self.dot_is_interface = isinstance(value, Mapping) or (
                isinstance(value, list | tuple) and not isinstance(value, GoStringSlice)
            )

            def one_iteration(index: Any, element: Any) -> None:
                if decl_count > 0:
                    self.vars[-1] = (self.vars[-1][0], element)
                if decl_count > 1:
                    self.vars[-2] = (self.vars[-2][0], index)
                try:
                    self.walk(element, node.list, out=out)
                except _Continue:
                    pass
                finally:
                    del self.vars[mark:]

            ran = False
            try:
                if isinstance(value, Mapping):
                    for key, element in sorted_map_items(value):
                        ran = True
                        one_iteration(key, element)
                elif isinstance(value, list | tuple):
                    for position, element in enumerate(value):
                        ran = True
                        one_iteration(position, element)
                elif isinstance(value, int) and not isinstance(value, bool):
                    # Go 1.22: range over an integer counts from 0.
                    if decl_count > 1:
                        self.errorf(f"can't use {REDACTED} to iterate over more than one variable")
                    for position in range(value):
                        ran = True
                        one_iteration(position, position)
                elif value is not MISSING and value is not None:
                    self.errorf(f"range can't iterate over {REDACTED}")
            except _Break:
                return
            finally:
                self.dot_is_interface = saved_dot_is_interface
            if not ran and node.else_list is not None:
                self.walk(dot, node.else_list, out=out)
        finally:
            del self.vars[outer_mark:]

    def walk_template(self, dot: Any, node: TemplateNode, *, out: list[str]) -> None:
        self.node = node
        root = self.program.trees.get(node.name)
        if root is None:
            self.errorf(f"template {quote(node.name)} not defined")
            return
        if self.depth == MAX_TEMPLATE_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})")
        # Variables declared in the pipeline persist in the caller, as in Go.
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else MISSING
        saved = (self.template, self.vars, self.depth, self.dot_is_interface)
        self.template = node.name
        self.vars = [("$", new_dot)]
        self.depth += 1
        self.dot_is_interface = False
        try:
            self.walk(new_dot, root, out=out)
        finally:
            self.template, self.vars, self.depth, self.dot_is_interface = saved

    # -- evaluation -------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.node = pipe
        value: Any = _NO_FINAL
        for command in pipe.cmds:
            value = self.eval_command(dot, command, final=value)
            # A nil interface{} becomes the invalid value, as Go digs into interfaces here.
            if value is None:
                value = MISSING
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_var(variable.ident[0], value)
            else:
                self.vars.append((variable.ident[0], value))
        return value

    def not_a_function(self, args: tuple[Node, ...], *, final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, command: CommandNode, *, final: Any) -> Any:
        first = command.args[0]
        first_type = type(first)
        if first_type is FieldNode:
            return self.eval_field_node(dot, first, args=command.args, final=final)  # type: ignore[arg-type]
        if first_type is ChainNode:
            return self.eval_chain_node(dot, first, args=command.args, final=final)  # type: ignore[arg-type]
        if first_type is IdentifierNode:
            return self.eval_function(
                dot,
                first,  # type: ignore[arg-type]
                command=command,
                args=command.args,
                final=final,
            )
        if first_type is PipeNode:
            self.not_a_function(command.args, final=final)
            return self.eval_pipeline(dot, first)  # type: ignore[arg-type]
        if first_type is VariableNode:
            return self.eval_variable_node(dot, first, args=command.args, final=final)  # type: ignore[arg-type]
        self.node = first
        self.not_a_function(command.args, final=final)
        if first_type is BoolNode:
            return first.value  # type: ignore[attr-defined]
        if first_type is DotNode:
            return dot
        if first_type is NilNode:
            self.errorf("nil is not a command")
        if first_type is NumberNode:
            return self.ideal_constant(first)  # type: ignore[arg-type]
        if first_type is StringNode:
            return first.text  # type: ignore[attr-defined]
        return self.errorf(f"can't evaluate command {quote(str(first))}")

    def ideal_constant(self, constant: NumberNode) -> Any:
        self.node = constant
        text = constant.text
        if constant.is_complex:
            return constant.complex128
        is_hex_int = (
            len(text) > 2
            and text[0] == "0"
            and text[1] in "xX"
            and not any(c in text for c in "pP")
        )
        if (
            constant.is_float
            and not is_hex_int
            and not text.startswith("'")
            and any(char in text for char in ".eEpP")
        ):
            return constant.float64
        if constant.is_int:
            return constant.int64
        if constant.is_uint:
            self.errorf(f"{text} overflows int")
        return MISSING

    def eval_field_node(
        self, dot: Any, field: FieldNode, *, args: tuple[Node, ...] | None, final: Any
    ) -> Any:
        self.node = field
        return self.eval_field_chain(
            dot, dot, node=field, idents=field.ident, args=args, final=final
        )

    def eval_chain_node(
        self, dot: Any, chain: ChainNode, *, args: tuple[Node, ...] | None, final: Any
    ) -> Any:
        self.node = chain
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, chain.node, arg_type=None)
        return self.eval_field_chain(
            dot, receiver, node=chain, idents=chain.fields, args=args, final=final
        )

    def eval_variable_node(
        self, dot: Any, variable: VariableNode, *, args: tuple[Node, ...] | None, final: Any
    ) -> Any:
        self.node = variable
        value = self.var_value(variable.ident[0])
        if len(variable.ident) == 1:
            self.not_a_function(args or (variable,), final=final)
            return value
        return self.eval_field_chain(
            dot, value, node=variable, idents=variable.ident[1:], args=args, final=final
        )

    def eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        *,
        node: Node,
        idents: tuple[str, ...],
        args: tuple[Node, ...] | None,
        final: Any,
    ) -> Any:
        # Elements of a map[string]interface{} are interface values: Go names their type
        # "interface {}" in errors about their fields (a struct field keeps its own type).
        from_interface = receiver is dot and self.dot_is_interface
        last = len(idents) - 1
        for position, name in enumerate(idents):
            last_name = position == last
            previous = receiver
            receiver = self.eval_field(
                dot,
                name,
                node=node,
                args=args if last_name else None,
                final=final if last_name else _NO_FINAL,
                receiver=receiver,
                from_interface=from_interface,
            )
            from_interface = type(previous) is dict or isinstance(previous, Mapping)
        return receiver

    def eval_function(
        self,
        dot: Any,
        node: IdentifierNode,
        *,
        command: Node,
        args: tuple[Node, ...] | None,
        final: Any,
    ) -> Any:
        self.node = node
        function = self.program.functions.get(node.ident)
        if function is None:
            return self.errorf(f"{quote(node.ident)} is not a defined function")
        return self.eval_call(dot, function, node=command, name=node.ident, args=args, final=final)

    def eval_field(
        self,
        dot: Any,
        name: str,
        *,
        node: Node,
        args: tuple[Node, ...] | None,
        final: Any,
        receiver: Any,
        from_interface: bool,
    ) -> Any:
        if receiver is MISSING:
            if self.missing_key_error:
                self.errorf(f"nil data; no entry for key {quote(name)}")
            return MISSING
        if receiver is None:
            return self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        # Checking for dict first skips the slow ABC check on the common path.
        if type(receiver) is dict or isinstance(receiver, Mapping):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            try:
                return receiver[name]
            except KeyError:
                if self.missing_key_error:
                    self.errorf(f"map has no entry for key {quote(name)}")
                # missingkey=zero: the zero value of interface{} is a nil interface.
                return None
            except TypeError:
                pass
        method = self.find_method(receiver, name)
        if method is not None:
            return self.eval_call(dot, method, node=node, name=name, args=args, final=final)
        if isinstance(receiver, NilPointer) and name in receiver.fields:
            self.errorf(f"nil pointer evaluating {receiver.type_name}.{name}")
        view = struct_view(receiver)
        if view is not None:
            try:
                value = view.field(receiver, name)
            except KeyError:
                pass
            else:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return value
        receiver_type = "interface {}" if from_interface else type_name(receiver)
        return self.errorf(f"can't evaluate field {name} in type {receiver_type}")

    def find_method(self, receiver: Any, name: str) -> Function | None:
        if isinstance(receiver, JsonNumber):
            impl = _JSON_NUMBER_METHODS.get(name)
            if impl is None:
                return None
            return Function(name, lambda: impl(receiver))
        view = struct_view(receiver)
        if view is not None and name in view.methods:
            method = view.methods[name]
            return Function(name, lambda: method(receiver))
        return None

    def eval_call(
        self,
        dot: Any,
        function: Function,
        *,
        node: Node,
        name: str,
        args: tuple[Node, ...] | None,
        final: Any,
    ) -> Any:
        arg_nodes = args[1:] if args is not None else ()
        has_final = final is not _NO_FINAL
        num_in = len(arg_nodes) + (1 if has_final else 0)
        params = function.params
        num_fixed = len(arg_nodes)
        if function.variadic is not None:
            num_fixed = len(params)
            if num_in < num_fixed:
                self.errorf(
                    f"wrong number of args for {name}: want at least {len(params)} "
                    f"got {len(arg_nodes)}"
                )
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")

        if name in ("and", "or") and function is self.program.functions.get(name):
            # and/or evaluate their arguments only until one decides the result.
            want = name == "or"
            value: Any = MISSING
            for arg in arg_nodes:
                value = self.eval_arg(dot, arg, arg_type=ArgType.VALUE)
                if is_true(value) == want:
                    return value
            if has_final:
                value = self.validate_type(final, ArgType.VALUE)
            return value

        argv: list[Any] = []
        index = 0
        while index < num_fixed and index < len(arg_nodes):
            argv.append(self.eval_arg(dot, arg_nodes[index], arg_type=params[index]))
            index += 1
        if function.variadic is not None:
            while index < len(arg_nodes):
                argv.append(self.eval_arg(dot, arg_nodes[index], arg_type=function.variadic))
                index += 1
        if has_final:
            if function.variadic is None:
                final_type = params[-1]
            elif num_in - 1 < num_fixed:
                final_type = params[num_in - 1]
            else:
                final_type = function.variadic
            argv.append(self.validate_type(final, final_type))
        try:
            if function.needs_context:
                return function.impl(self.context, *argv)
            return function.impl(*argv)
        except FunctionError as error:
            self.node = node
            return self.errorf(f"error calling {name}: {error}")

    # -- arguments --------------------------------------------------------------------------

    def validate_type(self, value: Any, arg_type: ArgType | None) -> Any:
        if value is MISSING:
            if arg_type is None:
                return MISSING
            if arg_type is ArgType.ANY:
                return None
            if arg_type is ArgType.VALUE:
                return MISSING
            if arg_type is ArgType.STRING_SLICE:
                return GoStringSlice()
            if arg_type is ArgType.ANY_SLICE:
                return []
            if arg_type is ArgType.MAP:
                return {}
            return self.errorf(f"invalid value; expected {arg_type.value}")
        if arg_type is None or arg_type is ArgType.ANY or arg_type is ArgType.VALUE:
            return value
        if arg_type is ArgType.STRING:
            if isinstance(value, str):
                # A json.Number is not a string to Go; accepting it only lets templates work
                # that fail under Vault Agent.
                return str(value)
        elif arg_type is ArgType.INT:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, JsonNumber) and isinstance(value.as_number(), int):
                return value.as_number()
        elif arg_type is ArgType.FLOAT:
            if isinstance(value, float):
                return value
        elif arg_type is ArgType.BOOL:
            if isinstance(value, bool):
                return value
        elif arg_type is ArgType.STRING_SLICE:
            if isinstance(value, GoStringSlice):
                return value
            if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
                return GoStringSlice(value)
        elif arg_type is ArgType.ANY_SLICE:
            # Go refuses a []string here; accepting it only lets more templates work.
            if isinstance(value, list | tuple):
                return value
        elif arg_type is ArgType.MAP and isinstance(value, Mapping):
            return value
        got = "interface {}" if value is None else type_name(value)
        return self.errorf(f"wrong type for value; expected {arg_type.value}; got {got}")

    def eval_arg(self, dot: Any, node: Node, *, arg_type: ArgType | None) -> Any:
        self.node = node
        node_type = type(node)
        if node_type is DotNode:
            return self.validate_type(dot, arg_type)
        if node_type is NilNode:
            if arg_type is None or arg_type is ArgType.ANY:
                return None
            if arg_type is ArgType.VALUE:
                return MISSING
            if arg_type in (ArgType.STRING_SLICE, ArgType.ANY_SLICE, ArgType.MAP):
                return self.validate_type(MISSING, arg_type)
            return self.errorf(f"cannot assign nil to {arg_type.value}")
        if node_type is FieldNode:
            return self.validate_type(
                self.eval_field_node(dot, node, args=(node,), final=_NO_FINAL),  # type: ignore[arg-type]
                arg_type,
            )
        if node_type is VariableNode:
            return self.validate_type(
                self.eval_variable_node(dot, node, args=None, final=_NO_FINAL),  # type: ignore[arg-type]
                arg_type,
            )
        if node_type is PipeNode:
            return self.validate_type(self.eval_pipeline(dot, node), arg_type)  # type: ignore[arg-type]
        if node_type is IdentifierNode:
            return self.validate_type(
                self.eval_function(dot, node, command=node, args=None, final=_NO_FINAL),  # type: ignore[arg-type]
                arg_type,
            )
        if node_type is ChainNode:
            return self.validate_type(
                self.eval_chain_node(dot, node, args=None, final=_NO_FINAL),  # type: ignore[arg-type]
                arg_type,
            )
        # A literal: its Go type comes from the parameter.
        if arg_type is ArgType.BOOL:
            if node_type is BoolNode:
                return node.value  # type: ignore[attr-defined]
            return self.errorf(f"expected bool; found {node}")
        if arg_type is ArgType.FLOAT:
            if node_type is NumberNode and node.is_float:  # type: ignore[attr-defined]
                return node.float64  # type: ignore[attr-defined]
            return self.errorf(f"expected float; found {node}")
        if arg_type is ArgType.INT:
            if node_type is NumberNode and node.is_int:  # type: ignore[attr-defined]
                return node.int64  # type: ignore[attr-defined]
            return self.errorf(f"expected integer; found {node}")
        if arg_type is ArgType.STRING:
            if node_type is StringNode:
                return node.text  # type: ignore[attr-defined]
            return self.errorf(f"expected string; found {node}")
        if arg_type is None or arg_type is ArgType.ANY or arg_type is ArgType.VALUE:
            return self.eval_empty_interface(dot, node)
        return self.errorf(f"can't handle {node} for arg of type {arg_type.value}")

    def eval_empty_interface(self, dot: Any, node: Node) -> Any:
        self.node = node
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return self.ideal_constant(node)
        if isinstance(node, StringNode):
            return node.text
        return self.errorf(f"can't handle assignment of {node} to empty interface argument")

    # -- output -----------------------------------------------------------------------------

    def print_value(self, node: Node, value: Any, *, out: list[str]) -> None:
        self.node = node
        if value is MISSING:
            out.append("<no value>")
        else:
            out.append(format_value(value, dereference=True))

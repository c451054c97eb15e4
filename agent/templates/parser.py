"""Parser for Go templates, a port of text/template/parse/parse.go.

The structure (three-token lookahead, one tree per define/block sharing the lexer, variables in
scope) follows Go so that errors name the same line and say the same thing. Two additions from
later Go releases than the 1.19 oracle: ``{{else with}}`` (Go 1.23) and nothing else here.
"""

from __future__ import annotations

from collections.abc import Collection

from agent.templates.errors import TemplateParseError
from agent.templates.gofmt import quote
from agent.templates.lexer import Item, ItemType, lex
from agent.templates.literals import (
    LiteralError,
    char_constant_value,
    parse_float,
    parse_int,
    parse_uint,
    unquote,
)
from agent.templates.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
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
    is_empty_tree,
)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1

_TERM_STARTS = frozenset(
    {
        ItemType.BOOL,
        ItemType.CHAR_CONSTANT,
        ItemType.COMPLEX,
        ItemType.DOT,
        ItemType.FIELD,
        ItemType.IDENTIFIER,
        ItemType.NUMBER,
        ItemType.NIL,
        ItemType.RAW_STRING,
        ItemType.STRING,
        ItemType.VARIABLE,
        ItemType.LEFT_PAREN,
    }
)

# What Go's lexer channel yields once closed: the zero item.
_CLOSED = Item(ItemType.ERROR, 0, "", 0)
# Go sets no limit on nested actions; Python's stack does, at a depth that depends on the caller's
# recursion limit. A fixed bound, far beyond any real template, makes the outcome the same
# everywhere (parsing and executing a tree this deep stay well inside the default stack).
MAX_NESTING = 100


class _ItemStream:
    """The lexer output, shared by the trees of one parse as Go shares its lexer."""

    def __init__(self, items: list[Item]) -> None:
        self._items = items
        self._index = 0

    def next_item(self) -> Item:
        if self._index >= len(self._items):
            return _CLOSED
        item = self._items[self._index]
        self._index += 1
        return item


class _Tree:
    """One template being parsed: the top level, a {{define}} or a {{block}}."""

    def __init__(
        self,
        name: str,
        *,
        parse_name: str,
        stream: _ItemStream,
        tree_set: dict[str, ListNode],
        functions: Collection[str],
    ) -> None:
        self.name = name
        self.parse_name = parse_name
        self.stream = stream
        self.tree_set = tree_set
        self.functions = functions
        self.token: list[Item] = [_CLOSED, _CLOSED, _CLOSED]
        self.peek_count = 0
        self.vars: list[str] = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.nesting = 0
        self.root: ListNode | None = None

    # -- token handling ----------------------------------------------------------------------

    def next(self) -> Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.stream.next_item()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Item, t1: Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.stream.next_item()
        return self.token[0]

    def next_non_space(self) -> Item:
        while True:
            token = self.next()
            if token.typ != ItemType.SPACE:
                return token

    def peek_non_space(self) -> Item:
        token = self.next_non_space()
        self.backup()
        return token

    # -- errors ---------------------------------------------------------------------------

    def enter_nesting(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise TemplateParseError(f"template: {self.parse_name}: actions nested too deeply")

    def errorf(self, message: str) -> TemplateParseError:
        return TemplateParseError(f"template: {self.parse_name}:{self.token[0].line}: {message}")

    def expect(self, expected: ItemType, context: str) -> Item:
        token = self.next_non_space()
        if token.typ != expected:
            raise self.unexpected(token, context)
        return token

    def expect_one_of(self, first: ItemType, second: ItemType, *, context: str) -> Item:
        token = self.next_non_space()
        if token.typ not in (first, second):
            raise self.unexpected(token, context)
        return token

    def unexpected(self, token: Item, context: str) -> TemplateParseError:
        if token.typ == ItemType.ERROR:
            extra = ""
            if self.action_line not in (0, token.line):
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{token}{extra}")
        return self.errorf(f"unexpected {token} in {context}")

    # -- tree set ---------------------------------------------------------------------------

    def add(self) -> None:
        assert self.root is not None
        existing = self.tree_set.get(self.name)
        if existing is None or is_empty_tree(existing):
            self.tree_set[self.name] = self.root
            return
        if not is_empty_tree(self.root):
            raise self.errorf(f"template: multiple definition of template {quote(self.name)}")

    def child(self, name: str) -> _Tree:
        tree = _Tree(
            name,
            parse_name=self.parse_name,
            stream=self.stream,
            tree_set=self.tree_set,
            functions=self.functions,
        )
        # A {{block}}'s body is parsed inside the enclosing actions: it counts toward their bound.
        tree.nesting = self.nesting
        return tree

    # -- grammar ----------------------------------------------------------------------------

    def parse(self) -> None:
        nodes: list[Node] = []
        root_pos = self.peek().pos
        while self.peek().typ != ItemType.EOF:
            if self.peek().typ == ItemType.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == ItemType.DEFINE:
                    definition = self.child("definition")
                    definition.parse_definition()
                    continue
                self.backup2(delim)
            node = self.text_or_action()
            if isinstance(node, EndNode | ElseNode):
                raise self.errorf(f"unexpected {node}")
            nodes.append(node)
        self.root = ListNode(root_pos, tuple(nodes))

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(ItemType.STRING, ItemType.RAW_STRING, context=context)
        self.name = self.unquote(name.val)
        self.expect(ItemType.RIGHT_DELIM, context)
        self.root, end = self.item_list()
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        pos = self.peek_non_space().pos
        nodes: list[Node] = []
        while self.peek_non_space().typ != ItemType.EOF:
            node = self.text_or_action()
            if isinstance(node, EndNode | ElseNode):
                return ListNode(pos, tuple(nodes)), node
            nodes.append(node)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        token = self.next_non_space()
        if token.typ == ItemType.TEXT:
            return TextNode(token.pos, token.val)
        if token.typ == ItemType.LEFT_DELIM:
            self.action_line = token.line
            self.enter_nesting()
            try:
                return self.action()
            finally:
                self.action_line = 0
                self.nesting -= 1
        raise self.unexpected(token, "input")

    def action(self) -> Node:
        token = self.next_non_space()
        typ = token.typ
        if typ == ItemType.BLOCK:
            return self.block_control()
        if typ == ItemType.BREAK:
            return self.break_control(token.pos, token.line)
        if typ == ItemType.CONTINUE:
            return self.continue_control(token.pos, token.line)
        if typ == ItemType.ELSE:
            return self.else_control()
        if typ == ItemType.END:
            return self.end_control()
        if typ == ItemType.IF:
            return self.if_control()
        if typ == ItemType.RANGE:
            return self.range_control()
        if typ == ItemType.TEMPLATE:
            return self.template_control()
        if typ == ItemType.WITH:
            return self.with_control()
        self.backup()
        token = self.peek()
        # Variables declared here persist until the enclosing {{end}}.
        return ActionNode(token.pos, token.line, self.pipeline("command", ItemType.RIGHT_DELIM))

    def break_control(self, pos: int, line: int) -> Node:
        self.loop_control("break")
        return BreakNode(pos, line)

    def continue_control(self, pos: int, line: int) -> Node:
        self.loop_control("continue")
        return ContinueNode(pos, line)

    def loop_control(self, keyword: str) -> None:
        token = self.next_non_space()
        if token.typ != ItemType.RIGHT_DELIM:
            raise self.unexpected(token, "{{" + keyword + "}}")
        if self.range_depth == 0:
            raise self.errorf("{{" + keyword + "}} outside {{range}}")

    def pipeline(self, context: str, end: ItemType) -> PipeNode:
        token = self.peek_non_space()
        pipe_pos, pipe_line = token.pos, token.line
        decl: list[VariableNode] = []
        is_assign = False
        while True:
            variable = self.peek_non_space()
            if variable.typ != ItemType.VARIABLE:
                break
            self.next()
            # Three-token lookahead: in "$x foo" the token after $x decides whether $x is
            # declared or used, and the space after it must be put back in the latter case.
            token_after_variable = self.peek()
            following = self.peek_non_space()
            if following.typ in (ItemType.ASSIGN, ItemType.DECLARE):
                is_assign = following.typ == ItemType.ASSIGN
                self.next_non_space()
                decl.append(VariableNode(variable.pos, tuple(variable.val.split("."))))
                self.vars.append(variable.val)
                break
            if following.typ == ItemType.CHAR and following.val == ",":
                self.next_non_space()
                decl.append(VariableNode(variable.pos, tuple(variable.val.split("."))))
                self.vars.append(variable.val)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().typ in (
                        ItemType.VARIABLE,
                        ItemType.RIGHT_DELIM,
                        ItemType.RIGHT_PAREN,
                    ):
                        continue  # The second variable of a range.
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            if token_after_variable.typ == ItemType.SPACE:
                self.backup3(variable, token_after_variable)
            else:
                self.backup2(variable)
            break
        commands: list[CommandNode] = []
        while True:
            token = self.next_non_space()
            if token.typ == end:
                pipe = PipeNode(pipe_pos, pipe_line, is_assign, tuple(decl), tuple(commands))
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in _TERM_STARTS:
                self.backup()
                commands.append(self.command())
            else:
                raise self.unexpected(token, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for stage, command in enumerate(pipe.cmds[1:], start=2):
            if isinstance(command.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                raise self.errorf(f"non executable command in pipeline stage {stage}")

    def parse_control(
        self, *, context: str
    ) -> tuple[int, int, PipeNode, ListNode, ListNode | None]:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, ItemType.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            body, following = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(following, ElseNode):
                chained = {"if": ItemType.IF, "with": ItemType.WITH}.get(context)
                # {{else if x}} and {{else with x}} read as {{else}}{{if x}}...{{end}}{{end}},
                # ended by a single {{end}}.
                if chained is not None and self.peek().typ == chained:
                    self.next()
                    nested = self.if_control() if context == "if" else self.with_control()
                    else_list = ListNode(following.pos, (nested,))
                else:
                    else_list, following = self.item_list()
                    if not isinstance(following, EndNode):
                        raise self.errorf(f"expected end; found {following}")
            return pipe.pos, pipe.line, pipe, body, else_list
        finally:
            del self.vars[mark:]

    def if_control(self) -> BranchNode:
        return IfNode(*self.parse_control(context="if"))

    def range_control(self) -> BranchNode:
        return RangeNode(*self.parse_control(context="range"))

    def with_control(self) -> BranchNode:
        return WithNode(*self.parse_control(context="with"))

    def end_control(self) -> Node:
        return EndNode(self.expect(ItemType.RIGHT_DELIM, "end").pos)

    def else_control(self) -> Node:
        following = self.peek_non_space()
        if following.typ in (ItemType.IF, ItemType.WITH):
            # {{else if ...}} / {{else with ...}}: the keyword is left for parse_control.
            return ElseNode(following.pos, following.line)
        token = self.expect(ItemType.RIGHT_DELIM, "else")
        return ElseNode(token.pos, token.line)

    def block_control(self) -> Node:
        context = "block clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = self.pipeline(context, ItemType.RIGHT_DELIM)
        block = self.child(name)
        block.root, end = block.item_list()
        if not isinstance(end, EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        block.add()
        return TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != ItemType.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, ItemType.RIGHT_DELIM)
        return TemplateNode(token.pos, token.line, name, pipe)

    def parse_template_name(self, token: Item, context: str) -> str:
        if token.typ in (ItemType.STRING, ItemType.RAW_STRING):
            return self.unquote(token.val)
        raise self.unexpected(token, context)

    def command(self) -> CommandNode:
        pos = self.peek_non_space().pos
        args: list[Node] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            token = self.next()
            if token.typ == ItemType.SPACE:
                continue
            if token.typ in (ItemType.RIGHT_DELIM, ItemType.RIGHT_PAREN):
                self.backup()
            elif token.typ != ItemType.PIPE:
                raise self.unexpected(token, "operand")
            break
        if not args:
            raise self.errorf("empty command")
        return CommandNode(pos, tuple(args))

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == ItemType.FIELD:
            chain_pos = self.peek().pos
            fields: list[str] = []
            while self.peek().typ == ItemType.FIELD:
                fields.append(self.next().val[1:])
            chain = ChainNode(chain_pos, node, tuple(fields))
            # As in Go: fields after a field or variable extend it; after a literal they are an
            # error; after anything else (a call, a parenthesised pipeline) they form a chain.
            if isinstance(node, FieldNode):
                return FieldNode(chain_pos, tuple(str(chain)[1:].split(".")))
            if isinstance(node, VariableNode):
                return VariableNode(chain_pos, tuple(str(chain).split(".")))
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                raise self.errorf(f"unexpected . after term {quote(str(node))}")
            return chain
        return node

    def term(self) -> Node | None:
        token = self.next_non_space()
        typ = token.typ
        if typ == ItemType.IDENTIFIER:
            if token.val not in self.functions:
                raise self.errorf(f"function {quote(token.val)} not defined")
            return IdentifierNode(token.pos, token.val)
        if typ == ItemType.DOT:
            return DotNode(token.pos)
        if typ == ItemType.NIL:
            return NilNode(token.pos)
        if typ == ItemType.VARIABLE:
            return self.use_var(token.pos, token.val)
        if typ == ItemType.FIELD:
            return FieldNode(token.pos, tuple(token.val[1:].split(".")))
        if typ == ItemType.BOOL:
            return BoolNode(token.pos, token.val == "true")
        if typ in (ItemType.CHAR_CONSTANT, ItemType.COMPLEX, ItemType.NUMBER):
            try:
                return new_number(token.pos, token.val, typ=typ)
            except LiteralError as error:
                raise self.errorf(str(error)) from None
        if typ == ItemType.LEFT_PAREN:
            self.enter_nesting()
            try:
                return self.pipeline("parenthesized pipeline", ItemType.RIGHT_PAREN)
            finally:
                self.nesting -= 1
        if typ in (ItemType.STRING, ItemType.RAW_STRING):
            return StringNode(token.pos, token.val, self.unquote(token.val))
        self.backup()
        return None

    def use_var(self, pos: int, name: str) -> VariableNode:
        variable = VariableNode(pos, tuple(name.split(".")))
        if variable.ident[0] in self.vars:
            return variable
        raise self.errorf(f"undefined variable {quote(variable.ident[0])}")

    def unquote(self, literal: str) -> str:
        try:
            return unquote(literal)
        except LiteralError as error:
            raise self.errorf(str(error)) from None


def new_number(pos: int, text: str, *, typ: ItemType) -> NumberNode:
    """parse.newNumber: a number literal as every Go type that holds it exactly."""
    if typ == ItemType.CHAR_CONSTANT:
        rune = char_constant_value(text)
        return NumberNode(
            pos,
            text,
            is_int=True,
            is_uint=True,
            is_float=True,
            int64=rune,
            uint64=rune,
            float64=float(rune),
        )
    if typ == ItemType.COMPLEX:
        return _simplify_complex(pos, text, value=_parse_complex(text))
    if text.endswith("i"):
        try:
            imaginary = parse_float(text[:-1])
        except LiteralError:
            pass
        else:
            return _simplify_complex(pos, text, value=complex(0, imaginary))
    is_int = is_uint = is_float = False
    int64 = uint64 = 0
    float64 = 0.0
    try:
        uint64 = parse_uint(text)
        is_uint = True
    except LiteralError:
        pass
    try:
        int64 = parse_int(text)
        is_int = True
        if int64 == 0:
            is_uint = True  # -0
    except LiteralError:
        pass
    if is_int:
        is_float, float64 = True, float(int64)
    elif is_uint:
        is_float, float64 = True, float(uint64)
    else:
        try:
            float64 = parse_float(text)
        except LiteralError:
            pass
        else:
            if not any(char in text for char in ".eEpP"):
                raise LiteralError(f"integer overflow: {quote(text)}")
            is_float = True
            if float64.is_integer():
                if _INT64_MIN <= float64 <= _INT64_MAX:
                    is_int, int64 = True, int(float64)
                if 0 <= float64 <= _UINT64_MAX:
                    is_uint, uint64 = True, int(float64)
    if not (is_int or is_uint or is_float):
        raise LiteralError(f"illegal number syntax: {quote(text)}")
    return NumberNode(
        pos,
        text,
        is_int=is_int,
        is_uint=is_uint,
        is_float=is_float,
        int64=int64,
        uint64=uint64,
        float64=float64,
    )


def _parse_complex(text: str) -> complex:
    # Complex literals are REAL±IMAGi with no spaces, as the lexer guarantees.
    body = text[:-1]
    for index in range(len(body) - 1, 0, -1):
        if body[index] in "+-" and body[index - 1] not in "eEpP":
            try:
                return complex(parse_float(body[:index]), parse_float(body[index:]))
            except LiteralError:
                break
    raise LiteralError("expected integer")


def _simplify_complex(pos: int, text: str, *, value: complex) -> NumberNode:
    is_float = value.imag == 0
    is_int = is_uint = False
    int64 = uint64 = 0
    float64 = 0.0
    if is_float:
        float64 = value.real
        if float64.is_integer() and _INT64_MIN <= float64 <= _INT64_MAX:
            is_int, int64 = True, int(float64)
        if float64.is_integer() and 0 <= float64 <= _UINT64_MAX:
            is_uint, uint64 = True, int(float64)
    return NumberNode(
        pos,
        text,
        is_int=is_int,
        is_uint=is_uint,
        is_float=is_float,
        is_complex=True,
        int64=int64,
        uint64=uint64,
        float64=float64,
        complex128=value,
    )


def parse_trees(
    name: str,
    text: str,
    *,
    functions: Collection[str],
    left_delimiter: str = "{{",
    right_delimiter: str = "}}",
) -> dict[str, ListNode]:
    """Parse ``text`` into its named trees: ``name`` itself plus every define and block."""
    items = lex(text, left_delimiter=left_delimiter, right_delimiter=right_delimiter)
    tree_set: dict[str, ListNode] = {}
    tree = _Tree(
        name,
        parse_name=name,
        stream=_ItemStream(items),
        tree_set=tree_set,
        functions=functions,
    )
    tree.parse()
    tree.add()
    return tree_set

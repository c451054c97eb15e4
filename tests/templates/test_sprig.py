"""The sprig_* functions against Sprig's documentation (docs/*.md of Masterminds/sprig)."""

from __future__ import annotations

import re

import pytest

from agent.templates import TemplateError
from tests.templates.test_functions import run


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param('{{ sprig_trim "   hello    " }}', "hello", id="trim"),
        pytest.param('{{ sprig_trimAll "$" "$5.00" }}', "5.00", id="trimAll"),
        pytest.param('{{ sprig_trimSuffix "-" "hello-" }}', "hello", id="trimSuffix"),
        pytest.param('{{ sprig_trimPrefix "-" "-hello" }}', "hello", id="trimPrefix"),
        pytest.param('{{ sprig_upper "hello" }}', "HELLO", id="upper"),
        pytest.param('{{ sprig_lower "HELLO" }}', "hello", id="lower"),
        pytest.param('{{ sprig_title "hello world" }}', "Hello World", id="title"),
        pytest.param('{{ sprig_untitle "Hello World" }}', "hello world", id="untitle"),
        pytest.param('{{ sprig_repeat 3 "hello" }}', "hellohellohello", id="repeat"),
        pytest.param('{{ sprig_substr 0 5 "hello world" }}', "hello", id="substr"),
        pytest.param('{{ sprig_nospace "hello w o r l d" }}', "helloworld", id="nospace"),
        pytest.param('{{ sprig_trunc 5 "hello world" }}', "hello", id="trunc"),
        pytest.param('{{ sprig_trunc -5 "hello world" }}', "world", id="trunc from the end"),
        pytest.param('{{ sprig_contains "cat" "catch" }}', "true", id="contains"),
        pytest.param('{{ sprig_hasPrefix "cat" "catch" }}', "true", id="hasPrefix"),
        pytest.param('{{ sprig_hasSuffix "ch" "catch" }}', "true", id="hasSuffix"),
        pytest.param('{{ sprig_quote "a" 1 }}', '"a" "1"', id="quote"),
        pytest.param('{{ sprig_squote "a" }}', "'a'", id="squote"),
        pytest.param(
            '{{ sprig_cat "hello" "beautiful" "world" }}', "hello beautiful world", id="cat"
        ),
        pytest.param('{{ sprig_indent 4 "a\\nb" }}', "    a\n    b", id="indent"),
        pytest.param('{{ sprig_nindent 2 "a" }}', "\n  a", id="nindent"),
        pytest.param(
            '{{ "I Am Henry VIII" | sprig_replace " " "-" }}', "I-Am-Henry-VIII", id="replace"
        ),
        pytest.param(
            '{{ 1 | sprig_plural "one anchovy" "many anchovies" }}', "one anchovy", id="plural"
        ),
        pytest.param(
            '{{ sprig_sha256sum "hello" }}',
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            id="sha256sum",
        ),
        pytest.param('{{ sprig_b64enc "hello" }}', "aGVsbG8=", id="b64enc"),
        pytest.param('{{ sprig_b64dec "aGVsbG8=" }}', "hello", id="b64dec"),
        pytest.param('{{ sprig_default "foo" "" }}', "foo", id="default when empty"),
        pytest.param('{{ sprig_default "foo" "bar" }}', "bar", id="default when set"),
        pytest.param('{{ "" | sprig_default "foo" }}', "foo", id="default in a pipe"),
        pytest.param("{{ sprig_empty 0 }} {{ sprig_empty 1 }}", "true false", id="empty"),
        pytest.param("{{ sprig_coalesce 0 1 2 }}", "1", id="coalesce"),
        pytest.param("{{ sprig_all 0 1 2 }} {{ sprig_any 0 1 }}", "false true", id="all and any"),
        pytest.param('{{ sprig_ternary "foo" "bar" true }}', "foo", id="ternary"),
        pytest.param('{{ sprig_toJson (sprig_dict "a" 1) }}', '{"a":1}', id="toJson and dict"),
        pytest.param('{{ (sprig_fromJson "{\\"a\\": 1}").a }}', "1", id="fromJson"),
        pytest.param("{{ sprig_list 1 2 3 | sprig_first }}", "1", id="list and first"),
        pytest.param("{{ sprig_list 1 2 3 | sprig_last }}", "3", id="last"),
        pytest.param("{{ sprig_list 1 2 3 | sprig_rest }}", "[2 3]", id="rest"),
        pytest.param("{{ sprig_list 1 2 3 | sprig_initial }}", "[1 2]", id="initial"),
        pytest.param("{{ sprig_list 1 2 3 | sprig_reverse }}", "[3 2 1]", id="reverse"),
        pytest.param("{{ sprig_list 1 1 2 | sprig_uniq }}", "[1 2]", id="uniq"),
        pytest.param('{{ sprig_list 1 "" 2 | sprig_compact }}', "[1 2]", id="compact"),
        pytest.param("{{ sprig_has 4 (sprig_list 1 2 3 4) }}", "true", id="has"),
        pytest.param('{{ sprig_get (sprig_dict "a" "x") "a" }}', "x", id="get"),
        pytest.param('[{{ sprig_get (sprig_dict) "a" }}]', "[]", id="get of a missing key"),
        pytest.param('{{ sprig_hasKey (sprig_dict "a" 1) "a" }}', "true", id="hasKey"),
        pytest.param(
            '{{ sprig_keys (sprig_dict "b" 1 "a" 2) | sprig_sortAlpha }}',
            "[a b]",
            id="keys sorted with sortAlpha",
        ),
        pytest.param('{{ sprig_splitList "$" "foo$bar$baz" }}', "[foo bar baz]", id="splitList"),
        pytest.param('{{ sprig_list "a" 1 | sprig_join "," }}', "a,1", id="join of any list"),
        pytest.param("{{ sprig_add 1 2 3 }}", "6", id="add"),
        pytest.param("{{ sprig_add1 4 }}", "5", id="add1"),
        pytest.param("{{ sprig_sub 5 2 }}", "3", id="sub"),
        pytest.param("{{ sprig_mul 2 3 4 }}", "24", id="mul"),
        pytest.param("{{ sprig_div 7 2 }}", "3", id="div"),
        pytest.param("{{ sprig_mod 7 2 }}", "1", id="mod"),
        pytest.param("{{ sprig_max 1 5 3 }} {{ sprig_min 1 5 3 }}", "5 1", id="max and min"),
        pytest.param('{{ sprig_atoi "42" }} {{ sprig_atoi "x" }}', "42 0", id="atoi"),
        pytest.param('{{ sprig_int "12.0" }} {{ sprig_float64 "1.5" }}', "12 1.5", id="casts"),
        pytest.param("{{ sprig_until 3 }}", "[0 1 2]", id="until"),
        pytest.param('{{ sprig_regexFind "[a-zA-Z][1-9]" "abcd1234" }}', "d1", id="regexFind"),
        pytest.param(
            '{{ sprig_regexFindAll "[2,4,6,8]" "123456789" -1 }}', "[2 4 6 8]", id="regexFindAll"
        ),
        pytest.param(
            '{{ sprig_regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}',
            "-W-xxW-",
            id="regexReplaceAll takes the text before the replacement",
        ),
        pytest.param("{{ sprig_toString 5 }}", "5", id="toString"),
    ],
)
def test_sprig_functions(template: str, expected: str) -> None:
    assert run(template) == expected


def test_sprig_random_functions_produce_the_documented_shapes() -> None:
    assert re.fullmatch(r"[0-9a-zA-Z]{12}", run("{{ sprig_randAlphaNum 12 }}"))
    assert re.fullmatch(r"[0-9]{3}", run("{{ sprig_randNumeric 3 }}"))
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        run("{{ sprig_uuidv4 }}"),
    )


def test_sprig_fail_stops_rendering_with_the_message() -> None:
    with pytest.raises(TemplateError, match="error calling sprig_fail: expected one schema"):
        run('{{ sprig_fail "expected one schema" }}')

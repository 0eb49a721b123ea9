"""The Containerfile parser: structure, forms, flags, errors with lines, expansion."""

from __future__ import annotations

import pytest

from reconciler.images.build import containerfile as cf
from reconciler.images.build.containerfile import ContainerfileError, Healthcheck, Instruction


def only(text: str) -> Instruction:
    """The single instruction after ``FROM base`` in a one-stage file."""
    parsed = cf.parse("FROM base\n" + text)
    assert len(parsed.stages) == 1
    (instruction,) = parsed.stages[0].instructions
    return instruction


def error(text: str, *, path: str = "Containerfile") -> ContainerfileError:
    with pytest.raises(ContainerfileError) as caught:
        cf.parse(text, path=path)
    return caught.value


# ---------------------------------------------------------------------------- structure


def test_a_minimal_file() -> None:
    parsed = cf.parse("FROM alpine\n")
    assert parsed.global_args == []
    (stage,) = parsed.stages
    assert (stage.index, stage.name, stage.base, stage.platform, stage.instructions) == (0, None, "alpine", None, [])
    assert stage.from_instruction.line == 1
    assert stage.from_instruction.original == "FROM alpine"


def test_stages_global_args_and_lookup() -> None:
    text = """\
# syntax=docker/dockerfile:1
ARG BASE=alpine:3.19
ARG VERSION

from --platform=$BUILDPLATFORM ${BASE} as Build
run make
COPY . /src

FROM build AS test
RUN make test

FROM scratch
COPY --from=build /out /
"""
    parsed = cf.parse(text)
    assert [(a.line, a.args) for a in parsed.global_args] == [(2, ["BASE=alpine:3.19"]), (3, ["VERSION"])]
    assert [(s.index, s.name, s.base, s.platform) for s in parsed.stages] == [
        (0, "build", "${BASE}", "$BUILDPLATFORM"),
        (1, "test", "build", None),
        (2, None, "scratch", None),
    ]
    assert [(i.line, i.keyword) for i in parsed.stages[0].instructions] == [(6, "RUN"), (7, "COPY")]
    assert [(i.line, i.keyword) for i in parsed.stages[2].instructions] == [(13, "COPY")]
    assert parsed.stage("build") is parsed.stages[0]
    assert parsed.stage("BUILD") is parsed.stages[0]
    assert parsed.stage("1") is parsed.stages[1]
    assert parsed.stage("3") is None
    assert parsed.stage("missing") is None


@pytest.mark.parametrize(
    ("keyword_as_written", "keyword"), [("run", "RUN"), ("Run", "RUN"), ("wOrKdIr", "WORKDIR"), ("env", "ENV")]
)
def test_keywords_are_case_insensitive(keyword_as_written: str, keyword: str) -> None:
    instruction = only(f"{keyword_as_written} X=/y\n")
    assert instruction.keyword == keyword
    assert instruction.original == f"{keyword_as_written} X=/y"


def test_a_byte_order_mark_and_crlf_line_endings() -> None:
    parsed = cf.parse("\ufeffFROM a\r\nRUN echo \\\r\n  hi\r\nUSER me\r\n")
    assert [(i.line, i.args) for i in parsed.stages[0].instructions] == [(2, ["echo   hi"]), (4, ["me"])]


# ---------------------------------------------------------------------------- lines, continuations, directives

# (text after "FROM base\n", [(line, keyword, args)]) — lines count the FROM as line 1.
CONTINUATIONS = [
    ("RUN a \\\n  b\n", [(2, "RUN", ["a   b"])]),
    ("RUN a \\   \t\n  b\n", [(2, "RUN", ["a   b"])]),  # blanks after the escape
    ("RUN a \\\n# a comment\n  b\n", [(2, "RUN", ["a   b"])]),
    ("RUN a \\\n    # an indented comment\n  b\n", [(2, "RUN", ["a   b"])]),
    ("RUN a \\\n\n   \n  b\nUSER u\n", [(2, "RUN", ["a   b"]), (6, "USER", ["u"])]),  # empty continuation lines
    ("RUN a \\\n  b \\\n  c\n", [(2, "RUN", ["a   b   c"])]),
    ("RUN a \\", [(2, "RUN", ["a"])]),  # continuation at the end of the file
    ("# comment ending in \\\nRUN a\n", [(3, "RUN", ["a"])]),
    ("   RUN indented\n", [(2, "RUN", ["indented"])]),
    ("\n\n# c\nUSER u\n\n", [(5, "USER", ["u"])]),
    ("RUN echo a\\b\n", [(2, "RUN", ["echo a\\b"])]),  # an escape inside a line is the shell's business
    ("RUN echo 'x # not a comment'\n", [(2, "RUN", ["echo 'x # not a comment'"])]),
    ("RUN echo x # the shell's comment\n", [(2, "RUN", ["echo x # the shell's comment"])]),
]


@pytest.mark.parametrize(("text", "expected"), CONTINUATIONS)
def test_continuations_and_comments(text: str, expected: list[tuple[int, str, list[str]]]) -> None:
    parsed = cf.parse("FROM base\n" + text)
    assert [(i.line, i.keyword, i.args) for i in parsed.stages[0].instructions] == expected


def test_original_joins_continuations() -> None:
    instruction = only("RUN apt-get update && \\\n    apt-get install -y curl\n")
    assert instruction.original == "RUN apt-get update &&     apt-get install -y curl"


def test_the_backtick_escape_directive() -> None:
    text = "# escape=`\nFROM windows\nWORKDIR C:\\\nRUN dir `\n    /s\nCOPY a\\b c:\\d\\\n"
    parsed = cf.parse(text)
    assert [(i.line, i.keyword, i.args) for i in parsed.stages[0].instructions] == [
        (3, "WORKDIR", ["C:\\"]),
        (4, "RUN", ["dir     /s"]),
        (6, "COPY", ["a\\b c:\\d\\"]),
    ]
    assert {i.escape for i in parsed.stages[0].instructions} == {"`"}


@pytest.mark.parametrize(
    ("head", "escape"),
    [
        ("# escape=`\n", "`"),
        ("#escape = `\n", "`"),
        ("# ESCAPE=`\n", "`"),
        ("  # escape=`  \n", "`"),
        ("# syntax=docker/dockerfile:1\n# escape=`\n", "`"),
        ("# escape=`\n# syntax=docker/dockerfile:1\n", "`"),
        ("# escape=\\\n", "\\"),
        ("# a comment first\n# escape=`\n", "\\"),  # directives only at the very top
        ("\n# escape=`\n", "\\"),
        ("# unknown=1\n# escape=`\n", "\\"),
        ("FROM x\n# escape=`\n", "\\"),
    ],
)
def test_directives_only_count_at_the_top(head: str, escape: str) -> None:
    parsed = cf.parse(head + "FROM base\nRUN a `\n")
    assert parsed.stages[-1].instructions[0].escape == escape


def test_backslash_does_not_continue_under_the_backtick_escape() -> None:
    parsed = cf.parse("# escape=`\nFROM base\nRUN a \\\nUSER u\n")
    assert [(i.keyword, i.args) for i in parsed.stages[0].instructions] == [("RUN", ["a \\"]), ("USER", ["u"])]


# ---------------------------------------------------------------------------- exec and shell forms

FORMS = [
    ('CMD ["a", "b"]', ["a", "b"], True),
    ("CMD [a, b]", ["[a, b]"], False),
    ('CMD ["a" "b"]', ['["a" "b"]'], False),
    ("CMD []", [], True),
    ("CMD echo hi", ["echo hi"], False),
    ('CMD   ["spaced"]   ', ["spaced"], True),
    ('CMD ["caf\\u00e9", "a\\"q"]', ["café", 'a"q'], True),
    ('ENTRYPOINT ["/bin/sh", "-c"]', ["/bin/sh", "-c"], True),
    ("ENTRYPOINT exec top -b", ["exec top -b"], False),
    ("RUN [ -f /etc/x ] && echo yes", ["[ -f /etc/x ] && echo yes"], False),
    ("RUN [[ -n x ]]", ["[[ -n x ]]"], False),
    ('RUN ["a"] && b', ['["a"] && b'], False),
    ('RUN [ "$x" = y ]', ['[ "$x" = y ]'], False),
    ("RUN   echo   spaced   ", ["echo   spaced"], False),
    ('SHELL ["/bin/bash", "-euo", "pipefail", "-c"]', ["/bin/bash", "-euo", "pipefail", "-c"], True),
    ('COPY ["a b", "c d", "/dst/"]', ["a b", "c d", "/dst/"], True),
    ("COPY a b /dst/", ["a b /dst/"], False),
    ('ADD ["https://example.com/x.tgz", "/x"]', ["https://example.com/x.tgz", "/x"], True),
    ('VOLUME ["/data", "/logs"]', ["/data", "/logs"], True),
    ("VOLUME /data /logs", ["/data /logs"], False),
    ('WORKDIR ["/x"]', ['["/x"]'], False),  # WORKDIR has no exec form
    ("USER app:app", ["app:app"], False),
    ("EXPOSE 80/tcp 443", ["80/tcp 443"], False),
    ("STOPSIGNAL SIGTERM", ["SIGTERM"], False),
    ("MAINTAINER Jane Doe <jane@example.com>", ["Jane Doe <jane@example.com>"], False),
    ('HEALTHCHECK CMD ["curl", "-f", "http://x/"]', ["CMD", "curl", "-f", "http://x/"], True),
    ("HEALTHCHECK cmd curl -f http://x/ || exit 1", ["CMD", "curl -f http://x/ || exit 1"], False),
    ("HEALTHCHECK NONE", ["NONE"], False),
    ("ONBUILD RUN make", ["RUN make"], False),
    ('RUN echo "<<EOF"', ['echo "<<EOF"'], False),  # quoted, not a heredoc
    ("RUN echo $((1<<2))", ["echo $((1<<2))"], False),
]


@pytest.mark.parametrize(("text", "args", "json_form"), FORMS)
def test_exec_and_shell_forms(text: str, args: list[str], json_form: bool) -> None:
    instruction = only(text + "\n")
    assert (instruction.args, instruction.json_form) == (args, json_form)


def test_text_is_the_shell_form_argument() -> None:
    assert only("RUN make all\n").text == "make all"
    assert only('CMD ["a"]\n').text == ""


# ---------------------------------------------------------------------------- flags

# (instruction, flags, flag_items, args)
FLAGS = [
    (
        "COPY --from=build --chown=1000:1000 --chmod=0755 --link a b /dst/",
        {"from": "build", "chown": "1000:1000", "chmod": "0755", "link": "true"},
        None,
        ["a b /dst/"],
    ),
    ("COPY --link=false a b", {"link": "false"}, None, ["a b"]),
    ("COPY --link=TRUE a b", {"link": "true"}, None, ["a b"]),
    ("COPY --from= a b", {"from": ""}, None, ["a b"]),
    ('COPY --chown="app user" a b', {"chown": "app user"}, None, ["a b"]),
    ("COPY --chown=a\\ b x y", {"chown": "a b"}, None, ["x y"]),
    ('COPY --from=build ["a b", "/c"]', {"from": "build"}, None, ["a b", "/c"]),
    ("ADD --checksum=sha256:abc --chown=1 --chmod=644 http://x/y /y", None, None, ["http://x/y /y"]),
    (
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=sandbox make",
        {"mount": "type=secret,id=tok", "network": "none", "security": "sandbox"},
        [
            ("mount", "type=cache,target=/root/.cache"),
            ("mount", "type=secret,id=tok"),
            ("network", "none"),
            ("security", "sandbox"),
        ],
        ["make"],
    ),
    ("RUN -- --version", {}, [], ["--version"]),
    ("RUN echo --not-a-flag", {}, [], ["echo --not-a-flag"]),
    ('RUN --network=host ["curl", "x"]', {"network": "host"}, None, ["curl", "x"]),
    ("HEALTHCHECK --interval=30s --timeout=3s CMD true", {"interval": "30s", "timeout": "3s"}, None, ["CMD", "true"]),
]


@pytest.mark.parametrize(("text", "flags", "items", "args"), FLAGS)
def test_flags(text: str, flags: dict[str, str] | None, items: list[tuple[str, str]] | None, args: list[str]) -> None:
    instruction = only(text + "\n")
    if flags is not None:
        assert instruction.flags == flags
    if items is not None:
        assert instruction.flag_items == items
    assert instruction.args == args


def test_repeated_mounts_are_all_kept() -> None:
    instruction = only("RUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true\n")
    assert instruction.flag_values("mount") == ["type=cache,target=/a", "type=tmpfs,target=/b"]
    assert instruction.flag_values("network") == []


def test_from_platform() -> None:
    parsed = cf.parse("FROM --platform=linux/arm64 alpine AS a\nFROM --platform= alpine\n")
    assert [stage.platform for stage in parsed.stages] == ["linux/arm64", None]


# ---------------------------------------------------------------------------- errors, with their lines

ERRORS = [
    ("", 1, "no instructions"),
    ("# only a comment\n\n", 2, "no instructions"),
    ("ARG A=1\n", 1, "no FROM instruction"),
    ("ARG A\n\nARG B\n", 3, "no FROM instruction"),
    ("ARG A\nRUN x\nFROM a\n", 2, "RUN before the first FROM (only ARG may come before it)"),
    ("ENV A=1\nFROM a\n", 1, "ENV before the first FROM"),
    ("FROM a\nRUNN x\n", 2, 'unknown instruction "RUNN" (did you mean RUN?)'),
    ("FROM a\ncpy a b\n", 2, 'unknown instruction "cpy" (did you mean COPY?)'),
    ("FROM a\nENTRYPIONT x\n", 2, "(did you mean ENTRYPOINT?)"),
    ("FRM a\n", 1, "(did you mean FROM?)"),
    ("FROM a\nFOOBAR x\n", 2, 'unknown instruction "FOOBAR"'),
    ("FROM\n", 1, "FROM requires an image"),
    ("FROM --platform=linux/amd64\n", 1, "FROM requires an image"),
    ("FROM a AS\n", 1, "FROM ... AS requires a stage name"),
    ("FROM a b\n", 1, "FROM takes an image and optionally \"AS name\", not 'b'"),
    ("FROM a AS b c\n", 1, "FROM ... AS takes one stage name"),
    ("FROM a AS 1st\n", 1, "invalid stage name '1st'"),
    ("FROM a AS my$name\n", 1, "invalid stage name"),
    ("FROM a AS b\nRUN x\nFROM c AS B\n", 3, "duplicate stage name 'b' (first used on line 1)"),
    ("FROM ${BASE\n", 1, "missing '}'"),
    ("FROM a\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM a\nCOPY\n", 2, "COPY requires at least two arguments"),
    ('FROM a\nCOPY ["x"]\n', 2, "COPY requires at least two arguments"),
    ("FROM a\nCOPY --from=b x\n", 2, "COPY requires at least two arguments"),
    ("FROM a\nADD x\n", 2, "ADD requires at least two arguments"),
    ("FROM a\nENV\n", 2, "ENV requires at least one KEY=VALUE"),
    ("FROM a\nENV A\n", 2, "ENV A has no value"),
    ("FROM a\nENV A=1 B\n", 2, "ENV: can't find = in 'B'"),
    ("FROM a\nENV =x\n", 2, "ENV names can not be blank"),
    ("FROM a\nLABEL a=1 b\n", 2, "LABEL: can't find = in 'b'"),
    ("FROM a\nLABEL\n", 2, "LABEL requires at least one KEY=VALUE"),
    ('FROM a\nENV A="unterminated\n', 2, "unterminated double quote"),
    ("FROM a\nENV A='unterminated\n", 2, "unterminated single quote"),
    ("FROM a\nENV A=${B\n", 2, "missing '}'"),
    ("FROM a\nLABEL x=${B%suffix}\n", 2, "unsupported modifier '%'"),
    ("FROM a\nARG\n", 2, "ARG requires at least one NAME[=DEFAULT]"),
    ("FROM a\nARG =x\n", 2, "ARG names can not be blank"),
    ("FROM a\nARG A=${\n", 2, "missing '}'"),
    ("FROM a\nHEALTHCHECK\n", 2, "HEALTHCHECK requires NONE or CMD"),
    ("FROM a\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments or flags"),
    ("FROM a\nHEALTHCHECK --interval=5s NONE\n", 2, "HEALTHCHECK NONE takes no arguments or flags"),
    ("FROM a\nHEALTHCHECK CMD\n", 2, "missing command after HEALTHCHECK CMD"),
    ("FROM a\nHEALTHCHECK CMD []\n", 2, "missing command after HEALTHCHECK CMD"),
    ("FROM a\nHEALTHCHECK RUN x\n", 2, "unknown HEALTHCHECK type 'RUN'"),
    ("FROM a\nHEALTHCHECK --interval=5 CMD x\n", 2, "--interval: invalid duration '5'"),
    ("FROM a\nHEALTHCHECK --timeout=0s CMD x\n", 2, "--timeout can not be less than 1ms"),
    ("FROM a\nHEALTHCHECK --start-period=-1s CMD x\n", 2, "--start-period can not be less than 1ms"),
    ("FROM a\nHEALTHCHECK --retries=0 CMD x\n", 2, "--retries must be at least 1, not 0"),
    ("FROM a\nHEALTHCHECK --retries=x CMD x\n", 2, "--retries takes a whole number, not 'x'"),
    ("FROM a\nHEALTHCHECK --interval=5s --interval=6s CMD x\n", 2, "--interval given twice"),
    ("FROM a\nCOPY --form=x a b\n", 2, "unknown flag --form for COPY (did you mean --from?)"),
    ("FROM a\nADD --from=x a b\n", 2, "unknown flag --from for ADD"),
    ("FROM a\nRUN --privileged make\n", 2, "unknown flag --privileged for RUN"),
    ("FROM a\nENV --x=1 A=1\n", 2, "unknown flag --x: ENV takes no flags"),
    ("FROM a\nCMD --help\n", 2, "unknown flag --help: CMD takes no flags"),
    ("FROM --plaform=x a\n", 1, "unknown flag --plaform for FROM (did you mean --platform?)"),
    ("FROM a\nCOPY --from a b\n", 2, "missing a value for --from"),
    ("FROM a\nCOPY --link=maybe a b\n", 2, "--link takes true or false, not 'maybe'"),
    ("FROM a\nCOPY --from=x --from=y a b\n", 2, "--from given twice"),
    ('FROM a\nCMD ["a", "b"\n', 2, "unterminated JSON array"),
    ('FROM a\nRUN ["unterminated\n', 2, "unterminated JSON array"),
    ("FROM a\nENTRYPOINT [\n", 2, "unterminated JSON array"),
    ('FROM a\nCMD ["a", \\\n  "b"\n', 2, "unterminated JSON array"),
    ('FROM a\nCMD ["a", 1]\n', 2, "arrays must be comprised of strings only"),
    ('FROM a\nCOPY ["a", null, "c"]\n', 2, "arrays must be comprised of strings only"),
    ("FROM a\nONBUILD FROM b\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD onbuild RUN x\n", 2, "chaining ONBUILD via ONBUILD ONBUILD isn't allowed"),
    ("FROM a\nONBUILD MAINTAINER me\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD\n", 2, "ONBUILD requires an instruction"),
    ("FROM a\nONBUILD RUNN x\n", 2, 'unknown instruction "RUNN"'),
    ("FROM a\nONBUILD COPY x\n", 2, "COPY requires at least two arguments"),
    ("FROM a\nRUN <<EOF\necho hi\nEOF\n", 2, "heredocs are not supported (<<EOF in RUN)"),
    ("FROM a\nRUN cat <<'EOF' > /x\nhi\nEOF\n", 2, "heredocs are not supported (<<'EOF' in RUN)"),
    ('FROM a\nRUN python3 - <<-"END"\nprint(1)\nEND\n', 2, "heredocs are not supported"),
    ("FROM a\nCOPY <<EOF /etc/x\nhi\nEOF\n", 2, "heredocs are not supported (<<EOF in COPY)"),
    ("FROM a\nRUN\n", 2, "RUN requires a command"),
    ("FROM a\nRUN []\n", 2, "RUN requires a command"),
    ("FROM a\nCMD\n", 2, "CMD requires a command (write CMD [] to clear it)"),
    ("FROM a\nENTRYPOINT\n", 2, "ENTRYPOINT requires a command"),
    ("FROM a\nSHELL /bin/sh -c\n", 2, "SHELL requires the exec (JSON) form"),
    ("FROM a\nSHELL []\n", 2, "SHELL requires at least one argument"),
    ("FROM a\nVOLUME\n", 2, "VOLUME requires at least one argument"),
    ('FROM a\nVOLUME ["/a", " "]\n', 2, "VOLUME can not be an empty string"),
    ("FROM a\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM a\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("FROM a\nSTOPSIGNAL\n", 2, "STOPSIGNAL requires exactly one argument"),
    ("FROM a\nMAINTAINER\n", 2, "MAINTAINER requires exactly one argument"),
    ("FROM a\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ("FROM a\nWORKDIR /app/${DIR\n", 2, "missing '}'"),
    ("FROM a\nCOPY a ${B:?} /c\n", 1 + 1, None),  # ${B:?} only fails when expanded against real values
    ("# escape=x\nFROM a\n", 1, "invalid escape character 'x'"),
    ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one escape parser directive can be used"),
    ("# syntax=a\n# syntax=b\nFROM a\n", 2, "only one syntax parser directive can be used"),
    ("FROM a\nRUN echo \\\n  ok\nCOPY \\\n  x\n", 4, "COPY requires at least two arguments"),
    ("FROM a\n\n# comment\n\nRUNN\n", 5, 'unknown instruction "RUNN"'),
    ("# escape=`\n\nFROM a\nRUN a `\n  b\nRUNN `\n  x\n", 6, 'unknown instruction "RUNN"'),
]


@pytest.mark.parametrize(("text", "line", "message"), ERRORS)
def test_errors_name_their_line(text: str, line: int, message: str | None) -> None:
    if message is None:
        cf.parse(text)  # accepted: the check is for the builder
        return
    caught = error(text)
    assert (caught.path, caught.line) == ("Containerfile", line)
    assert message in caught.message
    assert str(caught) == f"Containerfile:{line}: {caught.message}"


def test_error_carries_the_path() -> None:
    caught = error("FROM a\nRUNN x\n", path="ctx/Dockerfile")
    assert str(caught) == 'ctx/Dockerfile:2: unknown instruction "RUNN" (did you mean RUN?)'


@pytest.mark.parametrize(
    ("path", "line", "expected"),
    [("Containerfile", 3, "Containerfile:3: boom"), ("", 3, "line 3: boom"), ("", 0, "boom")],
)
def test_error_formatting(path: str, line: int, expected: str) -> None:
    assert str(ContainerfileError(path, line, "boom")) == expected


# ---------------------------------------------------------------------------- ENV, LABEL, ARG

KEY_VALUES = [
    ("ENV A=1", {}, [("A", "1")]),
    ("ENV A=1 B=2", {}, [("A", "1"), ("B", "2")]),
    ("ENV A=", {}, [("A", "")]),
    ("ENV A=a=b", {}, [("A", "a=b")]),
    (
        "ENV A=\"x y\" B='$z' C=$z D=${z}x E=\\$z",
        {"z": "Z"},
        [("A", "x y"), ("B", "$z"), ("C", "Z"), ("D", "Zx"), ("E", "$z")],
    ),
    ("ENV A=a\\ b", {}, [("A", "a b")]),
    ('ENV PATH="/opt/bin:$PATH"', {"PATH": "/usr/bin"}, [("PATH", "/opt/bin:/usr/bin")]),
    ("ENV A=${UNSET:-fallback}", {}, [("A", "fallback")]),
    ("ENV A B C", {}, [("A", "B C")]),  # the legacy form: the rest of the line is the value
    ('ENV A  "quoted value"  here', {}, [("A", "quoted value  here")]),
    ("ENV A $B", {"B": "bee"}, [("A", "bee")]),
    ("ENV $K=v", {"K": "NAME"}, [("NAME", "v")]),
    ('LABEL "com.example.vendor"="ACME Inc" version=1.0', {}, [("com.example.vendor", "ACME Inc"), ("version", "1.0")]),
    ('LABEL description="a \\\n  b"', {}, [("description", "a   b")]),
    ("LABEL maintainer me@example.com", {}, [("maintainer", "me@example.com")]),
]


@pytest.mark.parametrize(("text", "variables", "expected"), KEY_VALUES)
def test_key_values(text: str, variables: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert cf.key_values(only(text + "\n"), variables) == expected


def test_key_values_with_the_backtick_escape() -> None:
    instruction = cf.parse("# escape=`\nFROM a\nENV A=C:\\dir B=`$x\n").stages[0].instructions[0]
    assert cf.key_values(instruction) == [("A", "C:\\dir"), ("B", "$x")]


def test_key_values_errors() -> None:
    with pytest.raises(ValueError, match="reads ENV and LABEL"):
        cf.key_values(only("RUN x\n"))
    with pytest.raises(ContainerfileError, match=r"^line 2: ENV names can not be blank"):
        cf.key_values(only("ENV $UNSET=v\n"))
    with pytest.raises(ContainerfileError, match=r"^line 2: X: must be set"):
        cf.key_values(only('ENV A="${X:?must be set}"\n'))
    # as in Docker, words split before expansion: a blank inside ${...} ends the word
    with pytest.raises(ContainerfileError, match=r"can't find = in 'be'"):
        cf.parse("FROM a\nENV A=${X:?must be set}\n")


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("ARG A", {}, [("A", None)]),
        ('ARG A B=2 C="x y" D=', {}, [("A", None), ("B", "2"), ("C", "x y"), ("D", "")]),
        ("ARG V=${BASE:-1}", {"BASE": "3"}, [("V", "3")]),
        ("ARG V=${BASE:-1}", {}, [("V", "1")]),
    ],
)
def test_arg_definitions(text: str, variables: dict[str, str], expected: list[tuple[str, str | None]]) -> None:
    assert cf.arg_definitions(only(text + "\n"), variables) == expected


def test_arg_definitions_refuses_other_instructions() -> None:
    with pytest.raises(ValueError, match="reads ARG"):
        cf.arg_definitions(only("ENV A=1\n"))


# ---------------------------------------------------------------------------- HEALTHCHECK and ONBUILD

SECOND = 10**9

HEALTHCHECKS = [
    ("HEALTHCHECK NONE", Healthcheck(test=["NONE"])),
    ("HEALTHCHECK none", Healthcheck(test=["NONE"])),
    ('HEALTHCHECK CMD ["curl", "-f", "x"]', Healthcheck(test=["CMD", "curl", "-f", "x"])),
    ("HEALTHCHECK CMD curl -f x || exit 1", Healthcheck(test=["CMD-SHELL", "curl -f x || exit 1"])),
    (
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s --start-interval=2s --retries=3 CMD true",
        Healthcheck(
            test=["CMD-SHELL", "true"],
            interval=90 * SECOND,
            timeout=SECOND // 2,
            start_period=3 * SECOND // 2,
            start_interval=2 * SECOND,
            retries=3,
        ),
    ),
    ("HEALTHCHECK --interval=1ms CMD true", Healthcheck(test=["CMD-SHELL", "true"], interval=10**6)),
]


@pytest.mark.parametrize(("text", "expected"), HEALTHCHECKS)
def test_healthcheck(text: str, expected: Healthcheck) -> None:
    assert cf.healthcheck(only(text + "\n")) == expected


def test_healthcheck_refuses_other_instructions() -> None:
    with pytest.raises(ValueError, match="reads HEALTHCHECK"):
        cf.healthcheck(only("RUN x\n"))


def test_onbuild_trigger() -> None:
    trigger = cf.onbuild_trigger(only("ONBUILD COPY --chown=1:1 a b /dst/\n"))
    assert (trigger.line, trigger.keyword, trigger.flags, trigger.args) == (2, "COPY", {"chown": "1:1"}, ["a b /dst/"])
    assert trigger.original == "COPY --chown=1:1 a b /dst/"
    with pytest.raises(ValueError, match="reads ONBUILD"):
        cf.onbuild_trigger(only("RUN x\n"))


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("1ns", 1),
        ("1us", 1000),
        ("1\u00b5s", 1000),
        ("1\u03bcs", 1000),
        ("1.5ms", 1_500_000),
        ("30s", 30 * SECOND),
        (".5s", SECOND // 2),
        ("1.s", SECOND),
        ("1m30s", 90 * SECOND),
        ("1h2m3s", 3723 * SECOND),
        ("-2s", -2 * SECOND),
        ("+2s", 2 * SECOND),
    ],
)
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert cf.parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "5", "s", "1d", "1.2.3s", "1s ", " 1s", "-", "1m-2s"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        cf.parse_duration(text)


# ---------------------------------------------------------------------------- words and expansion

WORDS = [
    ("", []),
    ("   ", []),
    ("a b  c", ["a", "b", "c"]),
    ("  a\tb  ", ["a", "b"]),
    ('a "b c" d', ["a", '"b c"', "d"]),
    ("'b c'd e", ["'b c'd", "e"]),
    ("x='a b' y=\"c d\"", ["x='a b'", 'y="c d"']),
    ('""', ['""']),
    ("a\\ b c", ["a\\ b", "c"]),
    ('a\\"b c"', ['a\\"b', 'c"']),  # an escaped quote opens nothing
    ("'a\\' b'", ["'a\\'", "b'"]),  # no escapes inside single quotes
    ('"a\\" b"', ['"a\\" b"']),
    ("a\\", ["a"]),  # a trailing escape is dropped
    ('"unterminated rest', ['"unterminated rest']),
]


@pytest.mark.parametrize(("text", "expected"), WORDS)
def test_words(text: str, expected: list[str]) -> None:
    assert cf.words(text) == expected


def test_words_with_the_backtick_escape() -> None:
    assert cf.words("a` b c\\ d", escape="`") == ["a` b", "c\\", "d"]


VARIABLES = {"A": "a", "E": "", "SP": "x y"}

EXPANSIONS = [
    ("plain", "plain"),
    ("$A", "a"),
    ("${A}", "a"),
    ("${A}b", "ab"),
    ("$Ab", ""),  # the name is Ab, unset
    ("$A.b", "a.b"),
    ("$A-$A", "a-a"),
    ("$SP", "x y"),
    ("$B", ""),
    ("${B}", ""),
    ("${B:-d}", "d"),
    ("${E:-d}", "d"),
    ("${E-d}", ""),
    ("${B-d}", "d"),
    ("${A:-d}", "a"),
    ("${A:+alt}", "alt"),
    ("${E:+alt}", ""),
    ("${E+alt}", "alt"),
    ("${B+alt}", ""),
    ("${B:-}", ""),
    ("${A:?}", "a"),
    ("${E?}", ""),
    ("${A:-${B:-x}}", "a"),
    ("${B:-${A}}", "a"),
    ("${B:-$A/x}", "a/x"),
    ("${B:-'q r'}", "q r"),
    ('${B:-"q r"}', "q r"),
    ("\\$A", "$A"),
    ("\\${A}", "${A}"),
    ("'$A'", "$A"),
    ('"$A"', "a"),
    ('"${A}"', "a"),
    ('"\\$A"', "$A"),
    ('"a\\"b"', 'a"b'),
    ('"a\\\\b"', "a\\b"),
    ('"a\\b"', "a\\b"),  # inside double quotes a backslash only escapes " $ and itself
    ("'a\\b'", "a\\b"),
    ("a\\ b", "a b"),
    ("a\\b", "ab"),
    ("x\\", "x"),
    ("$", "$"),
    ("a$", "a$"),
    ("$ x", "$ x"),
    ("$1", ""),
    ("$12x", "x"),
    ("$@", ""),
    ("'it'\"'\"'s'", "it's"),
    ("\"mixed 'quotes'\"", "mixed 'quotes'"),
    ("caf\u00e9 $A", "café a"),
]


@pytest.mark.parametrize(("word", "expected"), EXPANSIONS)
def test_expand(word: str, expected: str) -> None:
    assert cf.expand(word, VARIABLES) == expected


@pytest.mark.parametrize(
    ("word", "expected"), [("`$A", "$A"), ("a\\b", "a\\b"), ('"a`"b"', 'a"b'), ("C:\\$A", "C:\\a")]
)
def test_expand_with_the_backtick_escape(word: str, expected: str) -> None:
    assert cf.expand(word, VARIABLES, escape="`") == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${A", "missing '}'"),
        ("${", "missing '}'"),
        ("${A:-x", "missing '}'"),
        ("${A:", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:a}", "bad substitution"),
        ("${{A}}", "bad substitution"),
        ("${A%b}", "unsupported modifier '%'"),
        ("${A#b}", "unsupported modifier '#'"),
        ("${A/b/c}", "unsupported modifier '/'"),
        ("${A:=b}", "unsupported modifier ':='"),
        ("'abc", "unterminated single quote"),
        ('"abc', "unterminated double quote"),
        ('"abc\\', "unterminated double quote"),
        ("${B:?must be set}", "B: must be set"),
        ("${B?}", "B: is not allowed to be unset"),
        ("${E:?}", "E: is not allowed to be empty"),
    ],
)
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(ContainerfileError) as caught:
        cf.expand(word, VARIABLES, path="Containerfile", line=7)
    assert message in caught.value.message
    assert str(caught.value).startswith("Containerfile:7: ")


# ---------------------------------------------------------------------------- files


def test_parse_file(tmp_path) -> None:
    path = tmp_path / "Containerfile"
    path.write_text("FROM alpine AS base\nRUN true\n")
    parsed = cf.parse_file(str(path))
    assert parsed.stages[0].name == "base"


def test_parse_file_errors_carry_the_path(tmp_path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM alpine\nRUNN true\n")
    with pytest.raises(ContainerfileError) as caught:
        cf.parse_file(str(path))
    assert str(caught.value).startswith(f"{path}:2: ")


def test_parse_file_refuses_bytes_that_are_not_utf8(tmp_path) -> None:
    path = tmp_path / "Containerfile"
    path.write_bytes(b"FROM alpine\nLABEL a=\xff\n")
    with pytest.raises(ContainerfileError) as caught:
        cf.parse_file(str(path))
    assert (caught.value.line, caught.value.message) == (2, "not valid UTF-8")


def test_parse_file_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        cf.parse_file(str(tmp_path / "nope"))


def test_a_realistic_file() -> None:
    text = """\
# syntax=docker/dockerfile:1.6
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
WORKDIR /src
COPY --link pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \\
    pip install --prefix=/install .
COPY . .

FROM python:${PYTHON}-slim
LABEL org.opencontainers.image.title="reconcile" \\
      org.opencontainers.image.licenses=Apache-2.0
ENV PYTHONUNBUFFERED=1 \\
    PATH=/install/bin:$PATH
COPY --from=build /install /install
USER 65534:65534
EXPOSE 8080/tcp
HEALTHCHECK --interval=30s --timeout=3s CMD ["reconcile", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["reconcile"]
CMD ["agent"]
"""
    parsed = cf.parse(text, path="Containerfile")
    build, final = parsed.stages
    assert [a.original for a in parsed.global_args] == ["ARG PYTHON=3.11"]
    assert (build.name, build.base) == ("build", "python:${PYTHON}-slim")
    assert [i.keyword for i in build.instructions] == ["WORKDIR", "COPY", "RUN", "COPY"]
    assert build.instructions[2].line == 7
    assert build.instructions[2].flags == {"mount": "type=cache,target=/root/.cache/pip"}
    assert [i.line for i in final.instructions] == [12, 14, 16, 17, 18, 19, 20, 21, 22]
    assert cf.key_values(final.instructions[0]) == [
        ("org.opencontainers.image.title", "reconcile"),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
    ]
    assert cf.key_values(final.instructions[1], {"PATH": "/usr/bin"}) == [
        ("PYTHONUNBUFFERED", "1"),
        ("PATH", "/install/bin:/usr/bin"),
    ]
    assert parsed.stage(final.instructions[2].flags["from"]) is build
    assert cf.healthcheck(final.instructions[5]).test == ["CMD", "reconcile", "health"]
    assert (final.instructions[-1].args, final.instructions[-1].json_form) == (["agent"], True)

"""The Go-template subset behind ``--format`` (``reconciler/cli/gotemplate.py``): what
docker scripts write, rendered as Go's text/template renders it."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.cli import gotemplate

DOCUMENT: dict[str, Any] = {
    "Name": "/web",
    "State": {"Status": "running", "Pid": 42, "Running": True, "Paused": False},
    "Config": {"Labels": {"b": "2", "a": "1"}, "Env": ["A=1", "B=2"], "Cmd": None},
    "Mounts": [{"Source": "/x", "Destination": "/y"}, {"Source": "/p", "Destination": "/q"}],
    "NetworkSettings": {"Networks": {"net": {"IPAddress": "10.0.0.2"}, "my-net": {"IPAddress": "10.1.0.2"}}},
    "Float": 1.5e9,
    "Small": 0.25,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.State.Status}}", "running"),
        ("{{.State.Pid}} {{.State.Running}} {{.State.Paused}}", "42 true false"),
        ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
        ("{{json .Name}}", '"/web"'),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Nothing}}", "<no value>"),
        ("{{.Float}} {{.Small}}", "1.5e+09 0.25"),
        ("{{.NetworkSettings.Networks.net.IPAddress}}", "10.0.0.2"),
        ('{{(index .NetworkSettings.Networks "my-net").IPAddress}}', "10.1.0.2"),
        ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/x:/y /p:/q "),
        ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}", "0=/x;1=/p;"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
        ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.1.0.2 10.0.0.2 "),  # by key
        ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
        ('{{if eq .State.Status "running" "paused"}}up{{else}}down{{end}}', "up"),
        ("{{if .Config.Cmd}}a{{else if .State.Pid}}b{{else}}c{{end}}", "b"),
        ("{{with .State}}{{.Status}}{{end}}{{with .Config.Cmd}}never{{end}}", "running"),
        ("{{$s := .State}}{{$s.Status}} {{$.Name}}", "running /web"),
        ("{{- /* a comment */ -}}  a  {{- .State.Pid -}}  b", "a42b"),
        ("{{.State.Status | upper}} {{lower .Name}} {{title .State.Status}}", "RUNNING /web Running"),
        ('{{join .Config.Env ","}} {{split "a:b" ":"}} {{len .Mounts}}', "A=1,B=2 [a b] 2"),
        ('{{printf "%-8s|%5d|%q" .State.Status .State.Pid "x"}}', 'running |   42|"x"'),
        ('{{pad .State.Pid 1 2}}|{{truncate "abcdef" 3}}', " 42  |abc"),
        ('{{println "a" 1}}{{print 1 2 "x" 3}}', "a 1\n1 2x3"),
        ('{{index .Config.Labels "a"}} {{index .Mounts 1 | json}}', '1 {"Source":"/p","Destination":"/q"}'),
        ('{{not .State.Paused}} {{and 1 0}} {{or 0 .State.Pid}} {{lt 1 2}}{{ne .Name "/web"}}', "true 0 42 truefalse"),
        ("plain text, no action", "plain text, no action"),
        ('{{"a}}b"}}', "a}}b"),
    ],
)
def test_renders_as_go_does(template: str, expected: str) -> None:
    assert gotemplate.parse(template).execute(DOCUMENT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.State", "unclosed action"),
        ("{{nosuch .State}}", 'function "nosuch" not defined'),
        ("{{if .State}}x", "without {{end}}"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{range .Mounts}}{{else}}{{else}}{{end}}", "expected {{end}}"),
        ("{{.State.Status.Field}}", "can't evaluate field Field"),
        ("{{.Nothing.Below}}", "nil pointer evaluating"),
        ("{{$nope}}", 'undefined variable "$nope"'),
        ("{{.State.Status 1}}", "has arguments"),
        ('{{template "x"}}', "not supported"),
    ],
)
def test_errors_say_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(gotemplate.TemplateError, match=message.replace("{", r"\{").replace("$", r"\$")):
        gotemplate.parse(template).execute(DOCUMENT)


class Row(gotemplate.Fields):
    def field(self, name: str, args: list[Any]) -> Any:
        if name == "Label":
            return {"k": "v"}.get(args[0], "")
        if name == "ID" and not args:
            return "abc"
        raise KeyError(name)

    def as_json(self) -> Any:
        return {"ID": "abc"}


def test_fields_objects_answer_fields_and_methods() -> None:
    assert gotemplate.parse('{{.ID}} {{.Label "k"}}/{{.Label "x"}} {{json .}}').execute(Row()) == 'abc v/ {"ID":"abc"}'
    with pytest.raises(gotemplate.TemplateError, match="can't evaluate field Nope in type Row"):
        gotemplate.parse("{{.Nope}}").execute(Row())


def test_prepare_reads_dockers_conventions() -> None:
    assert gotemplate.prepare("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}")
    assert gotemplate.prepare("{{.ID}}\\n") == (False, "{{.ID}}\n")


def test_tabwrite_aligns_like_go_tabwriter() -> None:
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tweb\n"
    assert gotemplate.tabwrite(text) == "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   web\n"
    # a short column still takes the minimum width of 10; the last cell is never padded
    assert gotemplate.tabwrite("a\tb\nc\td") == "a         b\nc         d"
    # a line with fewer cells ends the column block above it
    assert gotemplate.tabwrite("aaaaaaaaaaaa\tb\nc\nd\te") == "aaaaaaaaaaaa   b\nc\nd         e"

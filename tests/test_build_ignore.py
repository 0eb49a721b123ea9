""".containerignore / .dockerignore rules, as moby's patternmatcher applies them."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.images.build import ignore
from reconciler.images.build.ignore import IgnoreError, IgnoreRules

# (pattern, path, ignored): one pattern at a time, a match on a parent directory counts.
SINGLE = [
    ("*", "fileutils.go", True),
    ("*.go", "fileutils.go", True),
    ("*.md", "README.md", True),
    ("*.md", "docs/README.md", False),  # '*' does not cross '/'
    ("*.md", "x.md/inner", True),  # a matched directory takes its contents along
    ("docs", "docs", True),
    ("docs", "docs/a/b.txt", True),
    ("docs", "sub/docs", False),
    ("docs", "docsx", False),
    ("docs/", "docs/a", True),
    ("/build", "build", True),
    ("/build", "build/out.o", True),
    ("/build", "src/build", False),
    ("./build", "build", True),
    ("a/../build", "build", True),
    ("a//b", "a/b", True),
    ("**/*.pyc", "a.pyc", True),
    ("**/*.pyc", "x/y/a.pyc", True),
    ("**/*.pyc", "x/y/a.py", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/b/c", True),
    ("a/**/b", "a/x/y/c", False),
    ("a/**/b", "x/a/b", False),
    ("**", "file", True),
    ("**", "dir/file", True),
    ("**/", "file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir", False),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir", "x/y/dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**file", "dir/xfile", True),  # patternmatcher's suffix test, quirk included
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("a?b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a[^a]b", "a☺b", True),
    ("[a-\u03b6]*", "\u03b1", True),  # zeta, alpha
    ("*[a-ζ]", "A", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[b-a]x", "ax", False),  # a reversed range is legal and matches nothing
    ("[^b-a]x", "ax", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("a\\\\", "a\\", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcZdef", False),
    ("abc.def", "abc.def", True),
    ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("a^b", "a^b", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a]b", "a]b", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), SINGLE)
def test_single_pattern(pattern: str, path: str, expected: bool) -> None:
    assert IgnoreRules([pattern]).ignored(path) is expected


# (patterns, path, ignored): exceptions and "the last match wins".
MULTI = [
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),  # the later pattern wins
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/other.tar.gz", True),
    (["*", "!keep", "keep/drop"], "keep/drop/x", True),
    (["*", "!keep", "keep/drop"], "keep/other", False),
    (["build", "!build/keep/**", "build/keep/tmp"], "build/keep/tmp/x", True),
    (["build", "!build/keep/**", "build/keep/tmp"], "build/keep/src/x", False),
    (["# a comment", "secret"], "# a comment", False),
    (
        ["  # not a comment (moby only skips '#' in column 1)"],
        "# not a comment (moby only skips '#' in column 1)",
        True,
    ),
    (["", "   ", "\t"], "anything", False),
    (["  spaced.txt  "], "spaced.txt", True),
    (["  !  spaced.txt", "*.txt"], "spaced.txt", True),
    (["*.txt", "  !  spaced.txt"], "spaced.txt", False),
    ([], "anything", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI)
def test_several_patterns(patterns: list[str], path: str, expected: bool) -> None:
    assert IgnoreRules(patterns).ignored(path) is expected


@pytest.mark.parametrize("path", [".", "", "./", "/"])
def test_the_context_root_is_never_ignored(path: str) -> None:
    assert IgnoreRules(["*", "**", "."]).ignored(path) is False


@pytest.mark.parametrize(
    ("path", "expected"), [("./docs/a", True), ("/docs/a", True), ("docs//a", True), ("x/../docs", True)]
)
def test_paths_are_cleaned_before_matching(path: str, expected: bool) -> None:
    assert IgnoreRules(["docs"]).ignored(path) is expected


@pytest.mark.parametrize(
    ("line", "normalized"),
    [
        ("# comment", None),
        ("", None),
        ("   ", None),
        ("/build", "build"),
        ("//build//", "build"),
        ("./a/./b/", "a/b"),
        ("a/b/../c", "a/c"),
        ("../outside", "../outside"),
        ("/", "/"),
        ("!/build", "!build"),
        ("!  docs/README.md  ", "!docs/README.md"),
        ("  *.md\t", "*.md"),
        ("!", "!"),
    ],
)
def test_normalize(line: str, normalized: str | None) -> None:
    assert ignore.normalize(line) == normalized


def test_patterns_are_exposed_normalized() -> None:
    rules = IgnoreRules(["# header", "/build/", "", "!build/keep", "**/*.pyc"])
    assert rules.patterns == ["build", "!build/keep", "**/*.pyc"]
    assert "build" in repr(rules)


@pytest.mark.parametrize(
    ("patterns", "line"),
    [
        (["["], 1),
        (["ok", "a["], 2),
        (["[^"], 1),
        (["[^bc"], 1),
        (["[]a]"], 1),
        (["[-]"], 1),
        (["[x-]"], 1),
        (["[-x]"], 1),
        (["[a-b-c]"], 1),
        (["\\"], 1),
        (["a\\"], 1),
        (["# fine", "", "!"], 3),
        (["!["], 1),
    ],
)
def test_bad_patterns_are_errors_with_their_line(patterns: list[str], line: int) -> None:
    with pytest.raises(IgnoreError) as caught:
        IgnoreRules(patterns)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert isinstance(caught.value, ValueError)


# (patterns, directory, may hold something kept)
DESCEND = [
    (["docs"], "docs", False),  # no exceptions at all
    (["docs", "!docs/README.md"], "docs", True),
    (["docs", "!docs/README.md"], "docs/sub", False),
    (["docs", "!docs/*/keep"], "docs/sub", True),
    (["docs", "!docs/*/keep"], "docs/sub/deeper", False),
    (["docs", "!**/keep"], "docs/a/b/c", True),
    (["build", "!build/keep/**"], "build", True),
    (["build", "!build/keep/**"], "build/keep", True),
    (["build", "!build/keep/**"], "build/drop", False),
    (["*", "!src"], "src", True),
    (["*", "!src"], "src/deep/inside", True),  # the exception matches an ancestor
    (["*", "!src"], "vendor", False),
    (["*", "!s?c"], "src", True),
    (["*", "!s[a-z]c/x"], "src", True),
    (["*", "!s[0-9]c/x"], "src", False),
    (["*", "!a**b"], "anything", True),  # '**' inside a component: stay on the safe side
    (["*", "!a[/]b"], "anything", True),  # '/' inside a class: stay on the safe side
    (["node_modules", "!README.md"], "node_modules", False),
    (["**", "!x"], ".", True),
]


@pytest.mark.parametrize(("patterns", "directory", "expected"), DESCEND)
def test_may_contain_kept(patterns: list[str], directory: str, expected: bool) -> None:
    assert IgnoreRules(patterns).may_contain_kept(directory) is expected


def _walk(root: str, rules: IgnoreRules) -> set[str]:
    """What a builder would send: prune ignored directories unless an exception reaches inside."""
    kept: set[str] = set()
    for directory, dirnames, filenames in os.walk(root):
        relative = os.path.relpath(directory, root).replace(os.sep, "/")
        prefix = "" if relative == "." else relative + "/"
        dirnames[:] = [
            name for name in dirnames if not rules.ignored(prefix + name) or rules.may_contain_kept(prefix + name)
        ]
        kept.update(prefix + name for name in filenames if not rules.ignored(prefix + name))
    return kept


def _make_tree(root: str, files: list[str]) -> None:
    for path in files:
        full = os.path.join(root, *path.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as handle:
            handle.write(path)


TREE = [
    "Containerfile",
    "README.md",
    "CHANGES.md",
    "src/app.py",
    "src/app.pyc",
    "src/pkg/mod.pyc",
    "docs/index.md",
    "docs/keep/manual.txt",
    "build/out.o",
    "build/keep/artifact",
    "node_modules/lib/index.js",
    ".git/HEAD",
]


def test_a_pruning_walk_over_a_real_tree(tmp_path) -> None:
    _make_tree(str(tmp_path), TREE)
    (tmp_path / ".dockerignore").write_text(
        "# build context\n.git\n*.md\n!README.md\n**/*.pyc\ndocs\n!docs/keep\n/build\n!build/keep/**\nnode_modules\n"
    )
    rules = ignore.load(str(tmp_path))
    assert _walk(str(tmp_path), rules) == {
        ".dockerignore",  # Docker sends it too, unless it lists itself
        "Containerfile",
        "README.md",
        "src/app.py",
        "docs/keep/manual.txt",
        "build/keep/artifact",
    }


def test_load_prefers_containerignore(tmp_path) -> None:
    (tmp_path / ".dockerignore").write_text("a\n")
    (tmp_path / ".containerignore").write_text("b\n")
    rules = ignore.load(str(tmp_path))
    assert rules.patterns == ["b"]


def test_load_falls_back_to_dockerignore(tmp_path) -> None:
    (tmp_path / ".dockerignore").write_text("\ufeff# comment\r\nsecret.txt\r\n\r\n!keep\r\n")
    rules = ignore.load(str(tmp_path))
    assert rules.patterns == ["secret.txt", "!keep"]
    assert rules.ignored("secret.txt")


def test_load_without_a_file_ignores_nothing(tmp_path) -> None:
    rules = ignore.load(str(tmp_path))
    assert rules.patterns == []
    assert not rules.ignored("anything/at/all")


def test_load_reports_the_file_and_line_of_a_bad_pattern(tmp_path) -> None:
    (tmp_path / ".containerignore").write_text("ok\n# comment\nbad[\n")
    with pytest.raises(IgnoreError) as caught:
        ignore.load(str(tmp_path))
    path = str(tmp_path / ".containerignore")
    assert str(caught.value) == f"{path}:3: bad pattern 'bad[': unterminated character class"


_COMPONENT = st.sampled_from(["a", "b", "ab", "*", "?", "**", "[ab]", "[^a]", "a*", "*b"])
_PATTERN = st.builds(
    lambda negated, parts: ("!" if negated else "") + "/".join(parts),
    st.booleans(),
    st.lists(_COMPONENT, min_size=1, max_size=3),
)
_PATH = st.lists(st.sampled_from(["a", "b", "ab", "ba"]), min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(patterns=st.lists(_PATTERN, min_size=1, max_size=4), path=_PATH)
def test_pruning_never_loses_a_kept_file(patterns: list[str], path: str) -> None:
    """Skipping an ignored directory that may_contain_kept() rules out drops nothing kept."""
    rules = IgnoreRules(patterns)
    parts = path.split("/")
    for depth in range(1, len(parts)):
        directory = "/".join(parts[:depth])
        if rules.ignored(directory) and not rules.may_contain_kept(directory):
            assert rules.ignored(path), (patterns, directory, path)

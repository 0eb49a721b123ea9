"""The image reference grammar: ``[registry[:port]/]path[:tag][@digest]``."""

from __future__ import annotations

import pytest

from reconciler.model.reference import Reference, is_digest, parse_reference

SHA = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", None, "busybox", None, None),
        ("busybox:1.36", None, "busybox", "1.36", None),
        ("busybox:latest", None, "busybox", "latest", None),
        ("library/busybox", None, "library/busybox", None, None),
        ("acme/team/app", None, "acme/team/app", None, None),
        ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("ghcr.io/acme/app", "ghcr.io", "acme/app", None, None),
        (
            "registry.example.com:5000/team/app:v1.2.3",
            "registry.example.com:5000",
            "team/app",
            "v1.2.3",
            None,
        ),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("myhost:5000/app", "myhost:5000", "app", None, None),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None),
        ("[fe80::1]/app:1", "[fe80::1]", "app", "1", None),
        ("192.168.1.10:5000/app", "192.168.1.10:5000", "app", None, None),
        # a first component that is not a domain stays part of the path
        ("myhost/app", None, "myhost/app", None, None),
        ("localhostx/app", None, "localhostx/app", None, None),
        # an uppercase first component can only be a domain (paths are lowercase)
        ("Registry/app", "Registry", "app", None, None),
        ("HOST.example.com/app", "HOST.example.com", "app", None, None),
        ("busybox@" + SHA, None, "busybox", None, SHA),
        ("busybox:1.36@" + SHA, None, "busybox", "1.36", SHA),
        ("ghcr.io/acme/app:1@" + SHA, "ghcr.io", "acme/app", "1", SHA),
        ("app@sha512:" + "ab" * 64, None, "app", None, "sha512:" + "ab" * 64),
        ("app@sha256+b64u:" + "a" * 32, None, "app", None, "sha256+b64u:" + "a" * 32),
        ("a.b", None, "a.b", None, None),
        ("a_b", None, "a_b", None, None),
        ("a__b", None, "a__b", None, None),
        ("a-b", None, "a-b", None, None),
        ("a---b", None, "a---b", None, None),
        ("a:_tag", None, "a", "_tag", None),
        ("a:Tag.With-Caps_1", None, "a", "Tag.With-Caps_1", None),
        ("a:" + "x" * 128, None, "a", "x" * 128, None),
        ("a" * 255, None, "a" * 255, None, None),
    ],
)
def test_valid_references(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == Reference(registry=registry, repository=repository, tag=tag, digest=digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "an image reference cannot be empty"),
        ("Busybox", "repository names must be lowercase"),
        ("Busybox:1", "invalid image reference 'Busybox:1': repository names must be lowercase"),
        ("acme/App:1", "repository names must be lowercase"),
        ("ghcr.io/Acme/app", "repository names must be lowercase"),
        ("a@sha256:short", "invalid image reference 'a@sha256:short'"),
        ("a@sha256:" + "A" * 64, "a sha256 digest has 64 lowercase hex digits"),
        ("a@sha256:" + "a" * 63 + "g", "invalid image reference"),
        ("a@sha256:" + "a" * 65, "a sha256 digest has 64 lowercase hex digits"),
        ("a@md5:abc", "invalid image reference"),
        ("a@" + "a" * 64, "invalid image reference"),
        ("busybox:", "invalid image reference 'busybox:'"),
        ("busybox@", "invalid image reference 'busybox@'"),
        ("busybox:1.36:2", "invalid image reference"),
        ("a:.tag", "invalid image reference"),
        ("a:-tag", "invalid image reference"),
        ("a:" + "x" * 129, "invalid image reference"),
        ("a:b/c", "invalid image reference"),
        ("a..b", "invalid image reference"),
        ("a-", "invalid image reference"),
        ("-a", "invalid image reference"),
        ("_a", "invalid image reference"),
        ("a//b", "invalid image reference"),
        ("/a", "invalid image reference"),
        ("a/", "invalid image reference"),
        (" busybox", "invalid image reference"),
        ("busybox ", "invalid image reference"),
        ("host_name:5000/app", "invalid image reference"),
        ("host:port/app", "invalid image reference"),
        ("http://ghcr.io/app", "invalid image reference"),
        ("a" * 256, "name longer than 255 characters"),
        ("a/" * 128 + "a", "name longer than 255 characters"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_reference(text)
    assert message in str(info.value)


def test_the_length_limit_counts_the_registry() -> None:
    assert parse_reference("x.io/" + "a" * 250).repository == "a" * 250
    with pytest.raises(ValueError, match="longer than 255"):
        parse_reference("x.io/" + "a" * 251)


def test_the_length_limit_does_not_count_tag_and_digest() -> None:
    ref = parse_reference("a" * 255 + ":" + "t" * 128 + "@" + SHA)
    assert (len(ref.repository), len(ref.tag or ""), ref.digest) == (255, 128, SHA)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SHA, True),
        ("sha256:" + "A" * 64, False),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 65, False),
        ("sha512:" + "a" * 64, False),
        ("a" * 64, False),
        ("busybox@" + SHA, False),
        ("", False),
    ],
)
def test_is_digest(text: str, expected: bool) -> None:
    assert is_digest(text) is expected


def test_reference_is_hashable_and_frozen() -> None:
    ref = parse_reference("busybox:1.36")
    assert {ref, parse_reference("busybox:1.36")} == {ref}
    with pytest.raises(AttributeError):
        ref.tag = "1.37"  # type: ignore[misc]


def test_a_bare_image_id_is_not_a_repository_name() -> None:
    """Docker refuses 64 hex digits as a name: it would be read as an image ID."""
    with pytest.raises(ValueError, match="image ID"):
        parse_reference("a" * 64)
    assert parse_reference("registry.example/" + "a" * 64).repository == "a" * 64

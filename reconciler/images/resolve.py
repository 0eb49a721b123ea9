"""Image objects of a manifest turned into digests: what the planner compares.

``digest_of`` answers "which manifest does this Image object mean now?" without
changing anything: a ``pull`` reference pinned by digest is that digest; a tag is
asked of its registry (one manifest GET, through the index to this host's
platform) when ``refresh`` is set, else read from the local store; ``build`` and
``import`` sources name what their ``tag`` points at in the store. ``ensure``
makes the image present (pulls, builds, imports) and returns the same digest.

The planner compares these digests with the ones recorded for running objects:
a tag that moved on the registry plans a recreate of every container using it,
which is how a registry push or a GitOps commit rolls out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from reconciler.images.store import Image, ImageError, ImageStore, normalize
from reconciler.model.image import Image as ImageObject
from reconciler.model.reference import parse_reference

Progress = Callable[[str], None]


class ResolveError(Exception):
    """An Image object whose digest could not be found; names the object."""


def local_reference(image: ImageObject) -> str:
    """The name the store keeps the image under: the pull reference as written, or
    the ``tag`` of a build or import (default ``NAME:latest`` after the object)."""
    spec = image.spec
    if spec.pull:
        return spec.pull
    return spec.tag or f"{image.metadata.name}:latest"


def _platform(image: ImageObject) -> dict[str, str] | None:
    from reconciler.images import oci

    return oci.parse_platform(image.spec.platform) if image.spec.platform else None


def digest_of(store: ImageStore, image: ImageObject, *, refresh: bool = False, config: Any = None) -> str | None:
    """The manifest digest ``image`` means now; None when it is not known without
    creating it (not in the store, and not asked of a registry)."""
    spec = image.spec
    if spec.pull:
        pinned = parse_reference(spec.pull).digest
        if pinned is not None and not refresh:
            return pinned
        if refresh:
            return _remote_digest(spec.pull, _platform(image), store, config, image.metadata.name)
    try:
        return store.resolve(local_reference(image))
    except ImageError:
        return None


def _remote_digest(reference: str, platform: dict[str, str] | None, store: ImageStore, config: Any, name: str) -> str:
    from reconciler.images.distribution import RegistryConfig, RegistryError
    from reconciler.images.distribution.client import open_session
    from reconciler.images.distribution.config import parse_target
    from reconciler.images.distribution.pull import resolve

    try:
        target = parse_target(reference)
        root = os.path.dirname(store.directory)
        with open_session(target, config or RegistryConfig(), root=root, operation="resolve") as session:
            return resolve(session, platform).digest
    except RegistryError as exc:
        raise ResolveError(f"image/{name}: {exc}") from None


def ensure(
    store: ImageStore,
    image: ImageObject,
    *,
    base_dir: str,
    cgroup_parent: str = "reconcile",
    progress: Progress | None = None,
    config: Any = None,
) -> Image:
    """Make ``image`` present in the store and return it: pull (re-resolving the
    tag), build (the layer cache makes an unchanged build cheap) or import. Paths
    in the spec are relative to ``base_dir``, the directory of its manifest file."""
    spec = image.spec
    name = image.metadata.name
    try:
        if spec.pull:
            from reconciler.images import distribution

            return distribution.pull(store, spec.pull, platform=_platform(image), config=config)
        if spec.build:
            from reconciler.images.build import builder

            context = os.path.join(base_dir, spec.build.context)
            containerfile = _containerfile(context, spec.build.containerfile)
            return builder.build(
                store,
                context,
                containerfile=containerfile,
                tags=[local_reference(image)],
                build_args={k: str(v) for k, v in spec.build.args.items()},
                target=spec.build.target,
                cgroup_parent=cgroup_parent,
                progress=progress,
            )
        assert spec.import_ is not None  # the model requires exactly one source
        return store.import_tarball(os.path.join(base_dir, spec.import_.path), local_reference(image))
    except ResolveError:
        raise
    except Exception as exc:  # every driver's error, named after the object
        raise ResolveError(f"image/{name}: {exc}") from exc


def _containerfile(context: str, name: str) -> str:
    """``Containerfile`` by default, falling back to ``Dockerfile`` as podman does."""
    path = os.path.join(context, name)
    if name == "Containerfile" and not os.path.exists(path) and os.path.exists(os.path.join(context, "Dockerfile")):
        return os.path.join(context, "Dockerfile")
    return path


def digests(
    store: ImageStore, images: Iterable[ImageObject], *, refresh: bool = False, config: Any = None
) -> dict[str, str]:
    """``Desired.image_digests``: each Image object's name (and its local reference,
    which containers may name directly) to the digest it means now."""
    out: dict[str, str] = {}
    for image in images:
        digest = digest_of(store, image, refresh=refresh, config=config)
        if digest is not None:
            out[image.metadata.name] = digest
            out[normalize(local_reference(image))] = digest
    return out

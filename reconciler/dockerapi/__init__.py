"""The Docker Engine API (versions 1.24 to 1.50), served by the agent on a socket of
its own (``reconcile agent --docker-socket PATH``) so the ``docker`` CLI, docker-py
and docker-compose work against our engine. Wire facts: ``shared/design/docker-api-subset.md``.

How endpoints are added (the registration interface):

- Each group of endpoints is a module ``reconciler/dockerapi/<group>.py`` exposing
  ``ROUTES: list[tuple[str, str, Handler]]``: (HTTP method, path pattern in aiohttp
  syntax *without* the version prefix, e.g. ``"/containers/{id}/json"``, handler).
- ``Handler = Callable[[web.Request, DockerContext], Awaitable[web.StreamResponse]]``
  (``reconciler.dockerapi.context``). ``DockerContext`` holds ``engine`` and
  ``async def call(fn, *args, **kwargs)``, which runs a blocking engine call in the
  agent's thread pool; never call the engine on the event loop.
- ``app.py`` imports the modules of its fixed list ``app.MODULES`` and skips one
  that does not exist yet, so groups are written independently. Each route is
  registered twice: as given and under ``/v{version}``; the version middleware checks
  the version (``request["docker_version"]``, a ``(major, minor)`` tuple).
- Errors: raise an engine error (``NotFound`` → 404, ``Conflict`` → 409,
  ``InvalidRequest`` → 400, others → their status or 500) or
  ``reconciler.dockerapi.errors.DockerError(status, message)``; the middleware
  answers Docker's ``{"message": ...}``. Helpers for query booleans, filters and
  JSON bodies are in ``errors.py`` too.
- Container ids: ``reconciler.dockerapi.ids`` (``docker_id``, ``resolve``).

Ownership: ``app``, ``context``, ``errors``, ``ids``, ``system`` (ping, version,
info), ``containers``, ``execs``, ``archive`` (+ ``archive_child``) and their helpers
(``store``: states, lookups, the Docker fields kept beside a container; ``translate``:
create bodies as ``RunRequest``; ``views``: list and inspect shapes; ``streams``:
framing and the 101; ``follow``: logs as an async stream; ``pump``: a process's stdio
over a hijacked connection; ``exits``: exits heard through pidfds); images,
networks, volumes, events, build and ``system_extra`` (df, prune) are the images
group's.
"""

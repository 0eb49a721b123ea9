"""Docker's create body (``Config`` + ``HostConfig`` + ``NetworkingConfig``) as our
engine's ``RunRequest``, and what the engine has no field for (kept beside the
container, ``sidecar``, so inspect can show it back). Pure: nothing is made here."""

from __future__ import annotations

from typing import Any

from reconciler.dockerapi.errors import DockerError
from reconciler.engine.models.containers import RunRequest

#: Bind options Docker accepts that change nothing for us (SELinux labels, propagation, copy modes).
_IGNORED_BIND_OPTIONS = {"rw", "z", "Z", "rprivate", "private", "rshared", "shared", "rslave", "slave", "copy"}


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerError(400, f"invalid {what}: expected a list of strings")
    return list(value)


def _bind(entry: str) -> str:
    """``vol:/data:rw`` / ``/host:/p:ro,z`` → our ``NAME:/p[:ro]``."""
    parts = entry.split(":")
    if len(parts) < 2:
        return entry  # "/p": an anonymous volume
    source, target, *rest = parts
    options = set(",".join(rest).split(",")) - {""} if rest else set()
    unknown = options - _IGNORED_BIND_OPTIONS - {"ro", "nocopy"}
    if unknown:
        raise DockerError(400, f"invalid mode for bind {entry!r}: {','.join(sorted(unknown))}")
    return f"{source}:{target}:ro" if "ro" in options else f"{source}:{target}"


def _mount(mount: dict[str, Any], volumes: list[str], tmpfs: list[str]) -> None:
    kind = mount.get("Type") or "volume"
    target = mount.get("Target") or mount.get("Destination")
    if not isinstance(target, str) or not target:
        raise DockerError(400, "invalid mount config: Target is required")
    read_only = bool(mount.get("ReadOnly"))
    source = mount.get("Source") or ""
    if kind == "tmpfs":
        options = mount.get("TmpfsOptions") or {}
        extra = []
        if options.get("SizeBytes"):
            extra.append(f"size={int(options['SizeBytes'])}")
        if options.get("Mode"):
            extra.append(f"mode={int(options['Mode']):o}")
        tmpfs.append(target + (":" + ",".join(extra) if extra else ""))
    elif kind in ("bind", "volume"):
        if kind == "bind" and not source.startswith("/"):
            raise DockerError(400, f'invalid mount config for type "bind": invalid mount path: {source!r}')
        entry = f"{source}:{target}" if source else target
        volumes.append(entry + (":ro" if read_only and source else ""))
    else:
        raise DockerError(400, f"invalid mount config: unsupported type {kind!r}")


def _publish(bindings: Any) -> list[str]:
    """``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`` → ``["8080:80"]``."""
    published: list[str] = []
    if not isinstance(bindings, dict):
        return published
    for port, hosts in bindings.items():
        number, _, protocol = str(port).partition("/")
        suffix = "/udp" if protocol == "udp" else ""
        for host in hosts or [{}]:
            host_port = str((host or {}).get("HostPort") or "")
            host_ip = str((host or {}).get("HostIp") or "")
            if not host_port:
                continue  # a random host port: the engine publishes only explicit ones
            published.append(f"{host_ip + ':' if host_ip else ''}{host_port}:{number}{suffix}")
    return published


def _networks(mode: str, config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Networks and aliases: ``default`` is ``bridge`` (Docker's), others by name."""
    mode = mode or "default"
    if mode == "default":
        mode = "bridge"
    if mode.startswith("container:"):
        raise DockerError(501, "not implemented: --network container:NAME")
    networks = [mode]
    aliases: list[str] = []
    endpoints = (config or {}).get("EndpointsConfig") or {}
    for name, endpoint in endpoints.items():
        if name not in (mode, "default") and name not in networks and mode not in ("host", "none"):
            networks.append(name)
        aliases.extend(a for a in (endpoint or {}).get("Aliases") or [] if isinstance(a, str))
    return networks, aliases


def warnings(body: dict[str, Any]) -> list[str]:
    """What the create asked for that is kept (inspect shows it) but not carried out:
    Docker's create answer has ``Warnings``, which the CLI prints."""
    host = body.get("HostConfig") or {}
    found = []
    if host.get("PublishAllPorts"):
        found.append("-P (publish all) is not supported: publish ports with -p HOST:CONTAINER")
    return found


def run_request(body: dict[str, Any], name: str | None) -> tuple[RunRequest, dict[str, Any]]:
    """The engine's request for Docker's create ``body``, and the sidecar record."""
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise DockerError(400, "config cannot be empty in order to create a container")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise DockerError(400, "invalid HostConfig")
    request: RunRequest = {"image": image, "name": name}
    entrypoint = body.get("Entrypoint")
    command = _strings(body.get("Cmd"), "Cmd")
    if entrypoint is not None:
        parts = _strings(entrypoint, "Entrypoint")
        request["entrypoint"] = parts[0] if parts else ""
        command = parts[1:] + command
    if command:
        request["command"] = command
    env = _strings(body.get("Env"), "Env")
    if env:
        request["env"] = env
    for key, field in (("User", "user"), ("WorkingDir", "workdir"), ("Hostname", "hostname")):
        value = body.get(key)
        if isinstance(value, str) and value:
            request[field] = value  # type: ignore[literal-required]
    labels = body.get("Labels") or {}
    if labels:
        request["labels"] = {str(k): str(v) for k, v in labels.items()}
    if body.get("Tty"):
        request["tty"] = True
    if body.get("OpenStdin"):
        request["interactive"] = True
    if body.get("StopSignal"):
        request["stop_signal"] = str(body["StopSignal"])
    volumes = [_bind(b) for b in _strings(host.get("Binds"), "Binds")]
    tmpfs = [f"{target}:{options}" if options else target for target, options in (host.get("Tmpfs") or {}).items()]
    for mount in host.get("Mounts") or []:
        _mount(mount, volumes, tmpfs)
    covered = {v.split(":")[1] if ":" in v else v for v in volumes}
    volumes.extend(path for path in (body.get("Volumes") or {}) if path not in covered)  # anonymous
    if volumes:
        request["volumes"] = volumes
    if tmpfs:
        request["tmpfs"] = tmpfs
    publish = _publish(host.get("PortBindings"))
    if publish:
        request["publish"] = publish
    networks, aliases = _networks(str(host.get("NetworkMode") or ""), body.get("NetworkingConfig") or {})
    request["networks"] = networks
    if aliases:
        request["network_aliases"] = aliases
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    primary = endpoints.get(networks[0]) or endpoints.get("default") or {}
    address = ((primary or {}).get("IPAMConfig") or {}).get("IPv4Address")
    if address:
        request["ip"] = str(address)
    if host.get("Memory"):
        request["memory"] = str(int(host["Memory"]))
    if host.get("MemorySwap"):
        request["memory_swap"] = str(int(host["MemorySwap"]))
    if host.get("NanoCpus"):
        request["cpus"] = str(int(host["NanoCpus"]) / 1e9)
    if host.get("CpuShares"):
        request["cpu_shares"] = int(host["CpuShares"])
    if host.get("CpusetCpus"):
        request["cpuset_cpus"] = str(host["CpusetCpus"])
    if host.get("PidsLimit"):
        request["pids_limit"] = int(host["PidsLimit"])
    if host.get("Init"):
        request["init"] = True
    if host.get("ReadonlyRootfs"):
        request["read_only"] = True
    if host.get("CapAdd"):
        request["cap_add"] = _strings(host["CapAdd"], "CapAdd")
    if host.get("CapDrop"):
        request["cap_drop"] = _strings(host["CapDrop"], "CapDrop")
    for key, field in (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts")):
        if host.get(key) == "host":
            request[field] = "host"  # type: ignore[literal-required]
    if host.get("Privileged"):
        raise DockerError(501, "not implemented: --privileged")
    restart = host.get("RestartPolicy") or {}
    if body.get("Healthcheck"):
        from reconciler.runtime.health import HealthConfig

        try:
            HealthConfig.from_model(body["Healthcheck"])
        except (TypeError, ValueError) as exc:
            raise DockerError(400, f"invalid healthcheck: {exc}") from None
    sidecar = {
        "Config": {
            "ExposedPorts": body.get("ExposedPorts") or {},
            "Healthcheck": body.get("Healthcheck"),
            "AttachStdin": bool(body.get("AttachStdin")),
            "AttachStdout": bool(body.get("AttachStdout")),
            "AttachStderr": bool(body.get("AttachStderr")),
            "OpenStdin": bool(body.get("OpenStdin")),
            "StdinOnce": bool(body.get("StdinOnce")),
            "Entrypoint": entrypoint,
            "Cmd": body.get("Cmd"),
            "Volumes": body.get("Volumes"),
        },
        "HostConfig": {
            "Binds": host.get("Binds"),
            "NetworkMode": str(host.get("NetworkMode") or "default"),
            "PortBindings": host.get("PortBindings") or {},
            "RestartPolicy": {
                "Name": str(restart.get("Name") or "no"),
                "MaximumRetryCount": int(restart.get("MaximumRetryCount") or 0),
            },
            "AutoRemove": bool(host.get("AutoRemove")),
            "Mounts": host.get("Mounts"),
        },
    }
    return request, sidecar

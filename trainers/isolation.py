"""What keeps a trainer away from its runner's secrets (docs/design.md, "What a runner and a trainer hold").

A trainer runs code and data a user chose; it must hold its job's token and signed URLs and nothing more.
Its runner holds the pool's NATS credentials (with them, anyone could pull another job's dispatch message),
so three things stand between them:

- the credentials reach a runner through a file or its stdin pipe (`VTP_NATS_CREDENTIALS`), never its
  environment or argv: `/proc/<pid>/environ` shows a process's *initial* environment for as long as it lives;
- as root, the runner starts the trainer as an unprivileged user of its own (`VTP_TRAINER_USER`) with no
  supplementary groups and a private work folder: it can read no root-owned process (`/proc/<pid>/environ`,
  `mem`, `fd`) and no root-owned file that is not world-readable. Where the interpreter lies in a folder
  other users cannot enter (a pyenv Python in root's 0700 home), the trainer gets a mount namespace in which
  that folder is an empty tmpfs holding only the way to the interpreter and the packages;
- pool and runner are not dumpable (`PR_SET_DUMPABLE` 0): a process of the same uid cannot read their
  `/proc/<pid>/environ` or `mem` either, where no second user can be had (not root).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import pwd
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from messaging.credentials import NatsCredentials

CREDENTIALS = "VTP_NATS_CREDENTIALS"
STDIN = "-"
DEFAULT_TRAINER_USER = "nobody"
_PR_SET_DUMPABLE = 4
_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def not_dumpable() -> None:
    """No process of this uid but root may read this one's `/proc/<pid>/environ`, `mem` or `fd` from
    now on (children start dumpable again: `execve` resets it)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


# --- NATS credentials -----------------------------------------------------------------------------


def read_credentials(environ: Mapping[str, str] | None = None) -> NatsCredentials:
    """The NATS user of this pool's runners. `VTP_NATS_CREDENTIALS` names where they are: `-` (stdin, as
    the local pool hands them to each runner), a `NAME=value` file (what `vtp admin nats-config` writes) or
    a folder with a file per name (a Kubernetes Secret mounted as a volume), holding `NATS_USER` and
    `NATS_PASSWORD`. Unset: `NATS_USER` and `NATS_PASSWORD` from the environment, or none at all."""
    env = os.environ if environ is None else environ
    where = env.get(CREDENTIALS)
    if not where:
        values = {name: env.get(name, "") for name in ("NATS_USER", "NATS_PASSWORD")}
    elif where == STDIN:
        values = parse_env_lines(sys.stdin.read())
    elif (path := Path(where)).is_dir():
        names = ("NATS_USER", "NATS_PASSWORD")
        values = {name: (path / name).read_text().strip() for name in names if (path / name).is_file()}
    else:
        values = parse_env_lines(path.read_text())
    return NatsCredentials(
        user=values.get("NATS_USER") or None,
        password=SecretStr(values["NATS_PASSWORD"]) if values.get("NATS_PASSWORD") else None,
    )


def credentials_text(credentials: NatsCredentials) -> str:
    """What `read_credentials` reads back from a runner's stdin; empty without credentials."""
    if not (credentials.user and credentials.password):
        return ""
    return f"NATS_USER={credentials.user}\nNATS_PASSWORD={credentials.password.get_secret_value()}\n"


def parse_env_lines(text: str) -> dict[str, str]:
    """`NAME=value` lines (`vtp.client.write_env_file`); blank lines and `#` comments skipped."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[name.strip()] = value
    return values


# --- the trainer's user and work folder -----------------------------------------------------------


@dataclass(frozen=True)
class TrainerUser:
    """Who a trainer runs as: another uid than its runner's when the runner is root, else the runner's."""

    uid: int
    gid: int
    name: str

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    def popen_options(self, preexec_fn: Callable[[], None] | None = None) -> dict[str, Any]:
        """How to start a child as this user (`subprocess.Popen`, `asyncio.create_subprocess_exec`), with
        `preexec_fn` (`trainers.lifetime.dies_with_parent`) run as that user, after the switch."""
        if not self.switches:
            return {"preexec_fn": preexec_fn}
        if hidden := hidden_folders(_needed_paths()):
            return {"preexec_fn": functools.partial(_enter_as, self, hidden, preexec_fn)}
        # No supplementary groups: root's (and a pod's fsGroup, which owns its mounted Secrets) stay behind.
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "preexec_fn": preexec_fn}


def _needed_paths() -> set[Path]:
    """What a trainer must reach: the interpreter, its standard library, the packages, this code."""
    import trainers

    paths = {Path(sys.executable), Path(sys.base_prefix), Path(sys.base_exec_prefix), Path(sys.prefix)}
    paths.add(Path(trainers.__file__).parent.parent)
    paths.update(Path(entry) for entry in sys.path if entry)
    return {path.resolve() for path in paths if path.exists()}


def hidden_folders(paths: Iterable[Path]) -> dict[Path, set[str]]:
    """For each path, the topmost folder above it that other users cannot enter (root's 0700 home, which
    holds a pyenv Python), with the names inside it that lead to the paths."""
    hidden: dict[Path, set[str]] = {}
    for path in paths:
        chain = [*reversed(path.parents), path]
        for folder, inside in itertools.pairwise(chain):
            if not folder.stat().st_mode & stat.S_IXOTH:
                hidden.setdefault(folder, set()).add(inside.name)
                break
    return hidden


def _enter_as(user: TrainerUser, hidden: dict[Path, set[str]], then: Callable[[], None] | None) -> None:
    """In the child, as root: a mount namespace of its own where each hidden folder is an empty tmpfs
    other users may enter, holding only what leads to the paths the trainer needs (bind mounts); then the
    switch to the trainer's user, with no supplementary groups."""
    assert _libc is not None
    _check(_libc.unshare(_CLONE_NEWNS), "unshare")
    _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    for folder, names in hidden.items():
        kept = {name: os.open(folder / name, os.O_PATH) for name in names}
        _check(_libc.mount(b"tmpfs", bytes(folder), b"tmpfs", 0, b"mode=0755"), f"mount tmpfs {folder}")
        for name, fd in kept.items():
            target = folder / name
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                target.mkdir()
            else:
                target.touch()
            source = f"/proc/self/fd/{fd}".encode()
            _check(_libc.mount(source, bytes(target), None, _MS_BIND | _MS_REC, None), f"bind {target}")
            os.close(fd)
    os.setgroups([])
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if then is not None:
        then()


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def trainer_user(environ: Mapping[str, str] | None = None) -> TrainerUser:
    """`VTP_TRAINER_USER` (a user name, `uid` or `uid:gid`; default `nobody`) when this process is root;
    otherwise this process's own user, the only one it can start a child as."""
    env = os.environ if environ is None else environ
    if os.geteuid() != 0:
        return TrainerUser(os.geteuid(), os.getegid(), env.get("USER", str(os.geteuid())))
    wanted = env.get("VTP_TRAINER_USER") or DEFAULT_TRAINER_USER
    uid_text, _, gid_text = wanted.partition(":")
    if uid_text.isdigit():
        uid = int(uid_text)
        gid = int(gid_text) if gid_text.isdigit() else uid
        if uid == 0:
            raise ValueError("VTP_TRAINER_USER: a trainer never runs as root")
        return TrainerUser(uid, gid, f"vtp-trainer-{uid}")
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        if wanted != DEFAULT_TRAINER_USER:
            raise ValueError(f"VTP_TRAINER_USER: no user {wanted!r}") from None
        return TrainerUser(65534, 65534, DEFAULT_TRAINER_USER)
    if entry.pw_uid == 0:
        raise ValueError("VTP_TRAINER_USER: a trainer never runs as root")
    return TrainerUser(entry.pw_uid, entry.pw_gid, entry.pw_name)


def make_work_dir(user: TrainerUser) -> Path:
    """A private folder for one trainer (its cwd, TMPDIR and, as another user, HOME), owned by it."""
    path = Path(tempfile.mkdtemp(prefix="vtp-trainer-"))  # 0700
    if user.switches:
        os.chown(path, user.uid, user.gid)  # CAP_CHOWN; a chmod after it would need CAP_FOWNER too
    return path


def remove_work_dir(path: Path) -> None:
    # Where the runner lacks the right to (a pod without CAP_DAC_OVERRIDE), the pod's scratch goes with it.
    shutil.rmtree(path, ignore_errors=True)

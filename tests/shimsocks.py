"""Finding the shim sockets of running Spaces while runtimed may be deleting them.

pathlib's glob raises FileNotFoundError when a directory it is walking vanishes (a
Space deleted at that moment): the suites that wait for shims to go need a walk that
treats a vanished directory as empty."""
import os
import pathlib


def _subdirs(path):
    try:
        with os.scandir(path) as it:
            return [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:  # gone, or never made
        return []


def shim_sockets(run_dir):
    """Every RUN/<space>/<instance>/shim.sock that exists now."""
    out = []
    for space in _subdirs(run_dir):
        for inst in _subdirs(space):
            sock = pathlib.Path(inst, "shim.sock")
            if sock.exists():
                out.append(sock)
    return out


def all_shim_sockets(base):
    """Every **/run/<space>/<instance>/shim.sock under @base (a pytest temp root)."""
    out = []
    stack = [base]
    while stack:
        d = stack.pop()
        for sub in _subdirs(d):
            if os.path.basename(sub) == "run":
                out += shim_sockets(sub)
            else:
                stack.append(sub)
    return out

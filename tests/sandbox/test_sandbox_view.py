"""The allowlist itself: what `plan_view` puts in a sample's root, as data."""

from __future__ import annotations

import os
import sys

from codeduel.sandbox._view import plan_view


def test_the_plan_is_the_system_the_interpreter_and_generated_etc() -> None:
    view = plan_view((1234, 1234))
    links = dict(view.symlinks)
    for top in ("/usr", "/bin", "/lib"):
        if os.path.islink(top):
            assert links[top] == os.readlink(top)
        elif os.path.isdir(top):
            assert top in view.binds
    prefix = os.path.realpath(sys.base_prefix)
    assert any(prefix == b or prefix.startswith(b + "/") for b in view.binds)
    assert links["/var/run"] == "/run" and links["/dev/fd"] == "/proc/self/fd"
    files = dict(view.files)
    assert "sandbox:x:1234:1234:" in files["/etc/passwd"] and "nobody" in files["/etc/passwd"]
    assert files["/etc/hosts"] == "127.0.0.1 localhost\n::1 localhost\n"
    # Nothing that is not asked for: no home, no /srv or /opt unless the interpreter is there.
    home = os.path.realpath(os.path.expanduser("~"))
    assert not any(home == b or home.startswith(b + "/") for b in view.binds if b != "/usr")
    for host_only in ("/srv", "/opt", "/mnt", "/media", "/sys", "/run", "/home"):
        assert host_only not in view.binds
    assert set(view.devices) <= {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                 "/dev/urandom"}  # fmt: skip
    assert view.dirs_under(("/tmp",)) == tuple(b for b in view.binds if b.startswith("/tmp/"))

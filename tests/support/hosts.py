"""Hosts of their own on this machine: Linux network namespaces, each with its own network
stack (its own loopback and addresses), joined to this one by a veth pair. A process in a
host reaches the services here only through the TCP proxies `Host.reach` opens on this
side of its link, as another machine would through the network.

Needs root (CAP_NET_ADMIN), which the tests have here and in CI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from config.env import BASE_DIR
from tests.support.faults import TcpProxy


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Host:
    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 10000}h{index}"
        self.name = f"pb{tag}"
        subnet = f"10.{200 + index}.{os.getpid() % 250}"
        self.outside, self.inside = f"{subnet}.1", f"{subnet}.2"
        self._link = f"pb{tag}"  # this side; the host's side is `{link}x` (15 chars at most)
        self._proxies: list[TcpProxy] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._link, "type", "veth", "peer", "name", f"{self._link}x")
            _ip("link", "set", f"{self._link}x", "netns", self.name)
            _ip("addr", "add", f"{self.outside}/24", "dev", self._link)
            _ip("link", "set", self._link, "up")
            self._inside("ip", "addr", "add", f"{self.inside}/24", "dev", f"{self._link}x")
            self._inside("ip", "link", "set", f"{self._link}x", "up")
            self._inside("ip", "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            self.remove()
            raise

    def _inside(self, *command: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *command], check=True)

    def reach(self, target_host: str, target_port: int) -> str:
        """An address:port in this host's network that reaches target_host:target_port
        here (a unix socket folder as target_host, as libpq names one, also works)."""
        proxy = TcpProxy(target_host, target_port, listen_host=self.outside)
        proxy.start()
        self._proxies.append(proxy)
        return f"{self.outside}:{proxy.port}"

    def start(
        self, name: str, command: list[str], *, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Run `command` in this host, in a process group of its own (kill() ends it all)."""
        with log.open("ab") as output:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, *command],
                cwd=BASE_DIR,
                env=dict(env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started, as when its machine dies."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def remove(self) -> None:
        for name in list(self.processes):
            self.kill(name)
        for proxy in self._proxies:
            proxy.stop()
        # Removing the namespace removes its end of the link, and with it this end.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self._link], capture_output=True)

"""Stand-in for Pulumi's Python language host, so that a plain `pulumi up` runs the project's program.

The official host (pulumi-language-python) cannot be obtained on these machines. The CLI starts
`pulumi-language-python ENGINE-ADDRESS` (tools/pulumi-plugins/) and reads the port it serves on from the
first line of its output; this serves the SDK's own Automation-API language server (the one
`sovereign up` uses in-process) with, as the program, the project's `main` folder run as `__main__`.
Once a language host is found the CLI also runs Python policy packs through it (RunPlugin) instead of
`pulumi-analyzer-policy-python`, so RunPlugin hands them to that stand-in. A normal Pulumi install does
not need this module.
"""

from __future__ import annotations

import os
import queue
import runpy
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import IO, Any

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

ANALYZER = "pulumi-analyzer-policy-python"

# Pulumi's own messages can be large (a whole stack's resources).
_MAX_MESSAGE = 400 * 1024 * 1024


class ProjectLanguageServer(LanguageServer):
    """Runs `<program directory>/__main__.py` from the project root, as the official host does."""

    def __init__(self) -> None:
        super().__init__(program=lambda: None)

    def Run(self, request: Any, context: Any) -> Any:
        root = request.info.root_directory or request.pwd
        program_dir = request.info.program_directory or os.path.join(root, request.program)
        os.chdir(root)

        def program() -> None:
            runpy.run_path(program_dir, run_name="__main__")

        self.program = program
        return super().Run(request, context)

    def RunPlugin(self, request: Any, context: Any) -> Iterator[Any]:
        analyzer = shutil.which(ANALYZER)
        if request.kind != "analyzer" or analyzer is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"only policy packs, through {ANALYZER} on PATH")
        env = dict(entry.split("=", 1) for entry in request.env) or None
        pack = request.info.program_directory
        proc = subprocess.Popen(
            [analyzer, *request.args, pack],
            cwd=request.pwd or pack,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        context.add_callback(proc.kill)  # the CLI cancels the call to stop the pack
        chunks: queue.Queue[tuple[str, bytes]] = queue.Queue()
        readers = [
            threading.Thread(target=_pump, args=(name, stream, chunks), daemon=True)
            for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        for reader in readers:
            reader.start()
        open_streams = len(readers)
        while open_streams:
            name, chunk = chunks.get()
            if not chunk:
                open_streams -= 1
                continue
            yield language_pb2.RunPluginResponse(**{name: chunk})
        yield language_pb2.RunPluginResponse(exitcode=proc.wait())


def _pump(name: str, stream: IO[bytes] | None, chunks: queue.Queue[tuple[str, bytes]]) -> None:
    """Forward a pipe chunk by chunk; an empty chunk marks its end."""
    assert stream is not None
    while chunk := os.read(stream.fileno(), 65536):
        chunks.put((name, chunk))
    chunks.put((name, b""))


def main() -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", _MAX_MESSAGE)],
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProjectLanguageServer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    stopped = threading.Event()
    # The CLI ends the host with SIGTERM (SIGINT when the user presses Ctrl-C): stop quietly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=1)
    sys.exit(0)


if __name__ == "__main__":
    main()

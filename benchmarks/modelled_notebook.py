"""A notebook server whose start is modelled as time, for the spawn benchmark.

On a cluster, a pod's notebook server starts on a node: it takes a few
seconds there, and none of the hub's CPU. The test kubelet runs every pod
on this machine, so fifty real `jupyterhub-singleuser` starting at once
spend about 120 of a round's 130 CPU seconds beside the hub and the API
server, and that share varies by a fifth from round to round whichever
spawner made the pods: the noise then hides what a spawner adds. This
stand-in waits `--start-seconds` (the real server's own time to listen,
alone on this machine), then listens where the kubelet said and answers
every request with 200, which is all the hub asks of a server before it
calls the launch ready. Everything up to the server's start (hub, API
server, kine, the kubelet's binding, volumes, mount namespaces and the
modelled container start) stays real.

    python benchmarks/modelled_notebook.py --start-seconds 2 --ip 127.0.0.5 --port 8888
"""

import argparse
import asyncio
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request's head, answer 200 and close."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()


async def serve(ip: str, port: int, start_seconds: float) -> None:
    await asyncio.sleep(start_seconds)
    server = await asyncio.start_server(answer, ip, port)
    async with server:
        await server.serve_forever()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-seconds", type=float, required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, required=True)
    argv = sys.argv[1:] if argv is None else argv
    if "--help-all" in argv:  # the kubelet's probe: can the pod's user run it
        return
    # the pod's other `--` options are jupyterhub-singleuser's: not ours
    args, _ = parser.parse_known_args(argv)
    if args.start_seconds < 0:
        parser.error("--start-seconds must be >= 0")
    asyncio.run(serve(args.ip, args.port, args.start_seconds))


if __name__ == "__main__":
    main()

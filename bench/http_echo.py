"""The HTTP ceiling of the tracking benchmark: a server process that answers every POST at once with
SF's success reply (`{"return_code":"0000"}`), reading the body and nothing more. The benchmark sends it
the same pushes from the same clients as it sends through Envoy to the platform, so
`tracking_pushes_per_s / http_echo_per_s` says how much of one Python HTTP exchange the platform's
own work (Envoy, the gateway, logistics, Postgres, NATS) leaves.

Run by the benchmark as `python -m bench.http_echo` with PORT in the environment.
"""

from __future__ import annotations

import os

from aiohttp import web

REPLY = b'{"return_code":"0000"}'


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=REPLY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None, access_log=None)


if __name__ == "__main__":
    main()

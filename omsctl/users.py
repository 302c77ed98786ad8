"""`omsctl user add`: create a console user (or replace one's password and roles) on the running stack.

It calls the public API (`POST /v1/users` through Envoy) with a short admin token signed by the stack's
own key, so the gateway validates and hashes exactly as for any admin. The password is read from
standard input (`--password-stdin`) or asked for without echo; it never appears in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from omsctl import tokens
from omsctl.catalogue import Edge, user_body
from omsctl.stack import edge_settings, read_state


def add_arguments(commands: Any) -> None:
    user_parser = commands.add_parser("user", help="console users: `omsctl user add --sub ana --role ops`")
    actions = user_parser.add_subparsers(dest="user_command", required=True)
    add = actions.add_parser("add", help="create a console user, or replace one's password and roles")
    add.add_argument("--sub", required=True, help="the user name (the token's subject)")
    add.add_argument("--role", action="append", dest="roles", required=True, help="a role (repeatable)")
    add.add_argument("--customer", default="", help="for the customer role: the customer id")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def run(args: argparse.Namespace, oms_home: Path) -> int:
    state = read_state(oms_home)
    if state is None:
        print("OMS platform is stopped; `make run` starts it", file=sys.stderr)
        return 1
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.sub}: ")
    endpoints: dict[str, str] = state["endpoints"]
    token = tokens.mint(edge_settings(oms_home), "omsctl-user", ["admin"], 300)
    user = {"sub": args.sub, "roles": args.roles, "customer_id": args.customer, "password": password}
    try:
        reply = Edge(endpoints["envoy"], token).call("POST", "/v1/users", user_body(user))
    except RuntimeError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    verb = "created" if reply.get("created") else "updated"
    print(f"{verb} console user {reply['subject']} ({', '.join(reply.get('roles', []))})")
    return 0

"""The ``gantry`` command. Standard library only, so that ``pip install`` of the repository
needs nothing else on a CI runner.

Exit codes: 0 done (``diff``: no changes), 1 ``diff`` found changes, 2 bad input or the API
refused, 3 the API could not be reached.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from gantry_cli import __version__

OK, CHANGES, REFUSED, UNREACHABLE = 0, 1, 2, 3


class Failure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("GANTRY_URL"),
        help="Gantry's base URL (env GANTRY_URL), e.g. https://gantry.example.com",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("GANTRY_TOKEN"),
        help="an API token, gty_… (env GANTRY_TOKEN)",
    )
    common.add_argument(
        "--tenant",
        default=os.environ.get("GANTRY_TENANT"),
        help="the tenant's slug (env GANTRY_TENANT)",
    )
    common.add_argument("--timeout", type=float, default=60, help="seconds (default 60)")
    parser = argparse.ArgumentParser(
        prog="gantry", description="Apply, diff and export a Gantry tenant's configuration.",
        epilog="exit codes: 0 ok, 1 diff found changes, 2 bad input or refused, "
               "3 cannot connect",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"gantry {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    apply = commands.add_parser("apply", parents=[common],
                                help="create or update what a file declares")  # fmt: skip
    apply.add_argument("-f", "--filename", required=True, help="a YAML file, or - for stdin")
    apply.add_argument(
        "--dry-run", action="store_true", help="show what would change; write nothing"
    )
    apply.add_argument(
        "--prune",
        action="store_true",
        help="delete objects of the file's kinds that the file does not name",
    )
    diff = commands.add_parser(
        "diff", parents=[common], help="show what apply would change (exit 1 if anything)"
    )
    diff.add_argument("-f", "--filename", required=True, help="a YAML file, or - for stdin")
    diff.add_argument("--prune", action="store_true", help="include what --prune would delete")
    export = commands.add_parser("export", parents=[common],
                                 help="the tenant's configuration as YAML")  # fmt: skip
    export.add_argument("-o", "--output", help="write to this file (default: stdout)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except Failure as failure:
        print(f"error: {failure.message}", file=sys.stderr)
        return failure.code


def _run(args) -> int:
    for option in ("url", "token", "tenant"):
        if not getattr(args, option):
            raise Failure(REFUSED, f"--{option} (or GANTRY_{option.upper()}) is required")
    if args.command == "export":
        text = _call(args, "GET", "export/").decode("utf-8")
        if args.output:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            sys.stdout.write(text)
        return OK
    body = _read(args.filename)
    dry_run = args.command == "diff" or args.dry_run
    query = {"dryRun": str(dry_run).lower(), "prune": str(args.prune).lower()}
    answer = json.loads(_call(args, "POST", "apply/?" + urllib.parse.urlencode(query), body))
    results = answer.get("results", [])
    if args.command == "diff":
        for result in results:
            if result["action"] != "unchanged":
                sys.stdout.write(result["diff"])
        return CHANGES if any(r["action"] != "unchanged" for r in results) else OK
    suffix = " (dry run)" if dry_run else ""
    for result in results:
        where = f"{result['gateway']}/" if result.get("gateway") else ""
        print(f"{result['kind'].lower()}/{where}{result['name']} {result['action']}{suffix}")
    return OK


def _read(filename: str) -> bytes:
    try:
        if filename == "-":
            return sys.stdin.buffer.read()
        with open(filename, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise Failure(REFUSED, f"cannot read {filename}: {error.strerror}") from None


def _call(args, method: str, path: str, body: bytes | None = None) -> bytes:
    base = args.url.rstrip("/")
    tenant = urllib.parse.quote(args.tenant, safe="")
    url = f"{base}/api/v1/tenants/{tenant}/{path}"
    if not url.startswith(("http://", "https://")):
        raise Failure(REFUSED, f"--url must start with http:// or https:// (got {args.url!r})")
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {args.token}")
    request.add_header("Accept", "application/json, application/yaml")
    if body is not None:
        request.add_header("Content-Type", "application/yaml")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as error:
        raise Failure(REFUSED, _explain(error)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Failure(UNREACHABLE, f"cannot connect to {base}: {reason}") from None


def _explain(error: urllib.error.HTTPError) -> str:
    """The API's error envelope as lines: the message, then each field by its JSON path."""
    try:
        envelope = json.loads(error.read())["error"]
    except (ValueError, KeyError, TypeError):
        return f"the API answered {error.code} {error.reason}"
    lines = [f"{envelope.get('message', '')} ({error.code} {envelope.get('code', '')})"]
    for field in envelope.get("fields", []):
        lines.append(f"  {field.get('path') or '(body)'}: {field.get('message')}")
    return "\n".join(lines)

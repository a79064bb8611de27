"""The ``frontline`` command line.

Every failure prints one plain sentence to stderr and exits non-zero; results go to stdout.

    frontline validate FILE...          parse, type-check and analyse; errors as
                                        file:line:col: message, warnings as
                                        file:line:col: warning: message
    frontline test FILE...              run the documents' own tests; ends "N passed, M failed"
    frontline eval FILE --context JSON  print a decision
    frontline import-durable FILE.json  convert a durable_rules ruleset to a Frontline document
    frontline import-dmn MODEL.dmn      convert a DMN model's decisions to a document
    frontline eval-dmn MODEL.dmn --input JSON   each decision of a DMN model, by its name
    frontline audit query [filters]     the ledger's records as JSONL or CSV, newest first
    frontline audit verify              walk every chain, and check the index against it
    frontline audit reindex             build the query index again from the segments
    frontline audit migrate             move a ledger of the earlier SQLite layout into segments
    frontline replay FILE --since 7d    the flip report of a candidate over recorded decisions
                                      (or --ruleset NAME --revision N: a deployed revision)
    frontline deploy FILE [-m MESSAGE] [--dry-run]   deploy to a running server ($FRONTLINE_URL,
                                      $FRONTLINE_KEY); errors name FILE
    frontline retire NAME --reason WHY  retire a ruleset on a running server
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from engine import CompiledRuleset, EvaluationError, RulesetError, compile_ruleset
from engine.testing import Coverage
from engine.times import format_time, time_or_age

DEFAULT_DATA_DIR = "var"
LEDGER_DIR = "ledger"  # every instance's segments and the query index, in the data dir
DEFAULT_URL = "http://127.0.0.1:8000"  # the server deploy and retire talk to


class CommandError(Exception):
    """A failure to report as one sentence and exit code 1."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = args.run(args, sys.stdout)
    except CommandError as exc:
        print(f"frontline: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("frontline: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # the reader went away (`frontline eval ... | head`)
        sys.stderr.close()
        code = 0
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915 -- a statement per command and option
    parser = argparse.ArgumentParser(
        prog="frontline",
        description="Frontline: decisioning for contact-center agent desktops.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument(
        "--host", help="address to listen on (default: $FRONTLINE_HOST or 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port (default: $FRONTLINE_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: 1)")
    serve.add_argument("--data-dir", dest="data_dir", help="data directory (default: var)")
    serve.set_defaults(run=_serve)

    validate = sub.add_parser("validate", help="parse and type-check ruleset documents")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run=_validate)

    test = sub.add_parser("test", help="run the documents' own tests")
    test.add_argument("files", nargs="+", metavar="FILE")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    test.add_argument(
        "--coverage",
        action="store_true",
        help="also list the rules, table rows, tree nodes and alerts no test reached",
    )
    test.set_defaults(run=_test)

    ev = sub.add_parser("eval", help="evaluate a document on one context and print the decision")
    ev.add_argument("file", metavar="FILE")
    ev.add_argument("--context", default="{}", help="JSON object, or @file")
    ev.add_argument("--answers", help="JSON object of tree answers, or @file")
    ev.add_argument("--counters", help='JSON like {"payment_failed": {"7d": 3}}, or @file')
    ev.add_argument("--as-of", dest="as_of", help='JSON like {"customer": "2026-11-22T09:00:00Z"}')
    ev.add_argument("--now", help="RFC 3339 time to evaluate at (default: the current time)")
    ev.add_argument("--tree", help="the tree to walk (default: the document's first)")
    ev.add_argument("--trace", action="store_true", help="include every rule's result")
    ev.set_defaults(run=_eval)

    imp = sub.add_parser(
        "import-durable", help="convert a durable_rules JSON ruleset to a Frontline document"
    )
    imp.add_argument("file", metavar="FILE.json")
    imp.add_argument("--name", help="the ruleset name (default: from the file name)")
    imp.add_argument("-o", "--output", help="write the document here instead of stdout")
    imp.set_defaults(run=_import_durable)

    dmn = sub.add_parser(
        "import-dmn",
        help="convert a DMN model's decision tables and literal expressions to a document",
    )
    dmn.add_argument("file", metavar="MODEL.dmn")
    dmn.add_argument("-o", "--output", help="write the document here instead of stdout")
    dmn.set_defaults(run=_import_dmn)

    ev_dmn = sub.add_parser(
        "eval-dmn",
        help="evaluate a DMN model (converted as import-dmn does) and print each decision's value",
    )
    ev_dmn.add_argument("file", metavar="MODEL.dmn")
    ev_dmn.add_argument(
        "--input", default="{}", help="JSON object of the input data by their names, or @file"
    )
    ev_dmn.set_defaults(run=_eval_dmn)

    audit = sub.add_parser("audit", help="query and verify the decision ledger")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    query = audit_sub.add_parser("query", help="print ledger records, newest first")
    _data_dir_option(query)
    query.add_argument("--customer", help="only this customer id")
    query.add_argument("--agent", help="only this agent id")
    query.add_argument("--ruleset", help="only this ruleset")
    query.add_argument("--revision", type=int, help="only this revision (needs --ruleset)")
    query.add_argument("--kind", help="decision, alert, ack, ruleset, shadow or checkpoint")
    query.add_argument("--outcome", help="offer:<offer>, queue:<queue>, alert:<rule>, rule:<rule>")
    query.add_argument("--since", help="RFC 3339 time, or an age such as 7d or 12h")
    query.add_argument("--until", help="RFC 3339 time, or an age such as 1h")
    query.add_argument("--limit", type=int, help="at most this many records (default: all)")
    query.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    query.set_defaults(run=_audit_query)
    check = audit_sub.add_parser(
        "verify", help="walk every chain and check the index; exit 1 if anything is wrong"
    )
    _data_dir_option(check)
    check.add_argument(
        "--public-key",
        help="the key tree heads must be signed by: ed25519:<base64> or a file holding it "
        "(default: the key of DATA_DIR/signing.key, if there is one)",
    )
    check.add_argument(
        "--since",
        metavar="CHECKPOINT",
        help="a signed tree head kept earlier (JSON): also check each log still extends it",
    )
    check.set_defaults(run=_audit_verify)
    proof = audit_sub.add_parser(
        "verify-proof",
        help="check a saved inclusion proof with the public key alone (no server, no data)",
    )
    proof.add_argument("file", metavar="FILE", help="the answer of /v1/audit/decisions/ID/proof")
    proof.add_argument("--public-key", required=True, help="ed25519:<base64>, or a file holding it")
    proof.set_defaults(run=_audit_verify_proof)
    reindex = audit_sub.add_parser(
        "reindex", help="build the query index again from the segments (with a progress bar)"
    )
    _data_dir_option(reindex)
    reindex.set_defaults(run=_audit_reindex)
    pub = audit_sub.add_parser(
        "public-key", help="print the public key that checks this server's signed tree heads"
    )
    _data_dir_option(pub)
    pub.add_argument(
        "--signing-key",
        default=os.environ.get("FRONTLINE_SIGNING_KEY"),
        help="the private key file (default: $FRONTLINE_SIGNING_KEY or DATA_DIR/signing.key)",
    )
    pub.set_defaults(run=_audit_public_key)
    mig = audit_sub.add_parser(
        "migrate", help="move a ledger of the earlier layout (ledger.db) into segments"
    )
    _data_dir_option(mig)
    mig.set_defaults(run=_audit_migrate)

    rep = sub.add_parser(
        "replay",
        help="re-evaluate recorded decisions with a candidate document or a deployed revision",
    )
    rep.add_argument("file", metavar="FILE", nargs="?", help="the candidate document")
    rep.add_argument("--ruleset", help="with --revision: a deployed revision as the candidate")
    rep.add_argument("--revision", type=int, help="the deployed revision of --ruleset to replay")
    _data_dir_option(rep)
    rep.add_argument("--since", required=True, help="RFC 3339 time, or an age such as 7d")
    rep.add_argument("--until", help="RFC 3339 time, or an age (default: now)")
    rep.add_argument("--examples", type=int, default=5, help="decision ids listed per change")
    rep.set_defaults(run=_replay)

    dep = sub.add_parser(
        "deploy", help="deploy a document to a running server (the key in $FRONTLINE_KEY)"
    )
    dep.add_argument("file", metavar="FILE", help="the ruleset document (YAML, or .json)")
    dep.add_argument("-m", "--message", help="why: kept with the revision (at most 500 chars)")
    dep.add_argument(
        "--dry-run", action="store_true", help="check it as a deploy would, store nothing"
    )
    dep.add_argument("--no-activate", action="store_true", help="store it without activating it")
    dep.add_argument(
        "--allow-untested", action="store_true", help="deploy even if its tests guard nothing"
    )
    _server_option(dep)
    dep.set_defaults(run=_deploy)

    ret = sub.add_parser(
        "retire", help="retire a ruleset on a running server (the key in $FRONTLINE_KEY)"
    )
    ret.add_argument("name", metavar="NAME", help="the ruleset")
    ret.add_argument("--reason", required=True, help="why (kept, and shown to its callers)")
    _server_option(ret)
    ret.set_defaults(run=_retire)
    return parser


def _server_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("FRONTLINE_URL", DEFAULT_URL),
        help=f"the server (default: $FRONTLINE_URL or {DEFAULT_URL})",
    )


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("FRONTLINE_DATA_DIR", DEFAULT_DATA_DIR),
        help=f"the server's data directory (default: $FRONTLINE_DATA_DIR or {DEFAULT_DATA_DIR})",
    )


def _serve(args: argparse.Namespace, out: TextIO) -> int:  # noqa: PLR0912, PLR0915 -- the start of a server, step by step
    import dataclasses

    from server.keys import KeyListError
    from server.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CommandError(str(exc)) from None
    changes: dict[str, Any] = {}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise CommandError("--port must be between 1 and 65535")
        changes["port"] = args.port
    if args.workers is not None:
        if not 1 <= args.workers <= 64:
            raise CommandError("--workers must be between 1 and 64")
        changes["workers"] = args.workers
    if args.data_dir:
        changes["data_dir"] = Path(args.data_dir)
    settings = dataclasses.replace(settings, **changes)
    if settings.api_keys is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
        raise CommandError(
            f"refusing to listen on {settings.host} with generated keys; set FRONTLINE_API_KEYS "
            "to serve beyond this machine"
        )
    from audit.segments import LogError
    from audit.signing import SigningKeyError, load_signer
    from audit.writer import LedgerError
    from engine import StoreCorrupt, StoreWriteFailed
    from server.app import load_keys
    from server.run import DataDirBusy, hold_data_dir, listen, serve
    from server.service.factory import first_start, preflight

    # Whatever the server and its indexer create (the ledger, its index, keys, ruleset
    # history) is readable by this user only.
    os.umask(0o077)
    try:
        hold_data_dir(settings.data_dir)
    except DataDirBusy as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(_cannot_write(exc, settings.data_dir)) from None
    try:
        sock = listen(settings)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
            "another server may be using the port, or choose another with --port"
        ) from None
    try:
        preflight(settings)  # before keys are made: a server that cannot start prints none
        signer, new_signer = load_signer(
            settings.signing_key_path, create=settings.signing_key is None
        )
        first_start(settings)
        _, created = load_keys(settings)
    except OSError as exc:
        raise CommandError(_cannot_write(exc, settings.data_dir)) from None
    except (
        KeyListError,
        StoreCorrupt,
        StoreWriteFailed,
        LogError,
        LedgerError,
        SigningKeyError,
    ) as exc:
        raise CommandError(f"cannot start: {exc}") from None
    if new_signer:
        print(
            f"Frontline created the key that signs its ledger, in {settings.signing_key_path};",
            file=out,
        )
        print("auditors pin its public key (`frontline audit public-key` prints it):", file=out)
        print(f"  {signer.public_key}", file=out)
    if created:
        print("Frontline created one API key per role. They are shown only now;", file=out)
        print(f"only their hashes are kept, in {settings.data_dir / 'keys.json'}.", file=out)
        for role, key in created.items():
            print(f"  {role:<12} {key}", file=out)
        out.flush()
    print(
        f"Frontline on http://{settings.host}:{settings.port} (data in {settings.data_dir}, "
        f"{settings.workers} worker{'s' if settings.workers > 1 else ''}); OpenAPI at /schema",
        file=out,
    )
    out.flush()
    return serve(settings, sock=sock)


def _cannot_write(error: OSError, data_dir: Path) -> str:
    """One sentence for a data directory the server cannot use: which file, and why."""
    where = error.filename or data_dir
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    advice = "; free space on its disk and start again" if full else ""
    return f"cannot start: {where}: {error.strerror or error}{advice}"


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"cannot read {path}: it is a directory") from None
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {path}: it is not UTF-8 text") from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def _load(path: str) -> CompiledRuleset:
    return compile_ruleset(_read_text(path), filename=path)


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    failed = 0
    for path in args.files:
        try:
            compiled = _load(path)
        except RulesetError as exc:
            failed += 1
            for problem in exc.errors:
                print(problem, file=out)
            continue
        found = (*compiled.warnings, *compiled.untested)
        for warning in found:
            print(f"{warning.where}: warning: {warning.message}", file=out)
        m = compiled.model
        warned = f", {_count(found, 'warning')}" if found else ""
        print(
            f"{path}: ok — ruleset {compiled.name}, {_count(m.eligibility, 'eligibility rule')}"
            f", {_count(m.escalation, 'escalation rule')}, {_count(m.alerts, 'alert')}, "
            f"{_count(m.tables, 'table')}, {_count(m.trees, 'tree')}, "
            f"{_count(m.tests, 'test')}{warned}",
            file=out,
        )
    return 1 if failed else 0


def _count(items: Sequence[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _test(args: argparse.Namespace, out: TextIO) -> int:
    passed = failed = 0
    for path in args.files:
        try:
            compiled = _load(path)
        except RulesetError as exc:
            failed += 1
            print(f"{path}: does not compile", file=out)
            for problem in exc.errors:
                print(f"  {problem}", file=out)
            continue
        results = compiled.run_tests()
        file_failed = [r for r in results if not r.passed]
        print(
            f"{path}: {len(results) - len(file_failed)} passed, {len(file_failed)} failed", file=out
        )
        for result in results:
            if not result.passed:
                print(f"  FAIL {result.name}", file=out)
                for line in result.failures:
                    print(f"       {line}", file=out)
            elif args.verbose:
                print(f"  ok   {result.name}", file=out)
        if args.coverage:
            coverage = Coverage.of(compiled.model, results)
            print(
                f"  coverage: {coverage.reached} of {coverage.total} reached "
                f"({coverage.percent:g}%)",
                file=out,
            )
            for line in coverage.lines():
                print(f"    not reached: {line}", file=out)
        passed += len(results) - len(file_failed)
        failed += len(file_failed)
    print(f"{passed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def _json_object(label: str, text: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object, or fail with one sentence naming ``label``."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(parsed, dict):
        raise CommandError(f"{label} must be a JSON object")
    return parsed


def _json_arg(name: str, value: str | None) -> Any:
    if value is None:
        return None
    return _json_object(name, _read_text(value[1:]) if value.startswith("@") else value)


def _eval(args: argparse.Namespace, out: TextIO) -> int:
    context = _json_arg("--context", args.context)
    answers = _json_arg("--answers", args.answers)
    counters = _json_arg("--counters", args.counters)
    as_of = _json_arg("--as-of", args.as_of)
    try:
        compiled = _load(args.file)
    except RulesetError as exc:
        for problem in exc.errors:
            print(problem, file=sys.stderr)
        raise CommandError(f"{args.file} does not compile") from None
    now = args.now if args.now is not None else datetime.now(UTC)
    try:
        decision = compiled.evaluate(
            context,
            answers=answers,
            now=now,
            counters=counters,
            trace=args.trace,
            as_of=as_of,
            tree=args.tree,
        )
    except EvaluationError as exc:
        raise CommandError(str(exc)) from None
    json.dump(decision.to_dict(), out, indent=2, ensure_ascii=False)
    out.write("\n")
    return 0


def _import_durable(args: argparse.Namespace, out: TextIO) -> int:
    from engine.importers.durable import convert_durable, dump_document

    ruleset = _json_object(args.file, _read_text(args.file))
    name = args.name or Path(args.file).stem
    result = convert_durable(ruleset, name=name)
    for sentence in result.unsupported:
        print(f"frontline: not converted: {sentence}", file=sys.stderr)
    _write_document(args.output, dump_document(result.document), out)
    return 0


def _write_document(path: str | None, text: str, out: TextIO) -> None:
    """Write a converted document to ``path``, or to ``out`` when there is none."""
    if path:
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    else:
        out.write(text)


def _convert_dmn(path: str) -> Any:
    """The DMN model at ``path`` converted (a DmnConversion), or one sentence on why not."""
    from engine.importers.dmn import MAX_MODEL_BYTES, DmnImportError, convert_dmn

    try:
        with Path(path).open("rb") as file:
            text = file.read(MAX_MODEL_BYTES + 1)
    except FileNotFoundError:
        raise CommandError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"cannot read {path}: it is a directory") from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return convert_dmn(text)
    except DmnImportError as exc:
        raise CommandError(f"{path}: {exc}") from None


def _import_dmn(args: argparse.Namespace, out: TextIO) -> int:
    from engine.importers.dmn import DmnImportError, dump_document

    conversion = _convert_dmn(args.file)
    try:
        text = dump_document(conversion.document)
    except DmnImportError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    _write_document(args.output, text, out)
    for problem in compile_ruleset(conversion.document, strict=False).warnings:
        print(f"frontline: warning: {args.file}: {problem.message}", file=sys.stderr)
    return 0


def _eval_dmn(args: argparse.Namespace, out: TextIO) -> int:
    values = _json_arg("--input", args.input)
    conversion = _convert_dmn(args.file)
    for name in conversion.unknown_inputs(values):
        print(
            f"frontline: --input names {name!r}, which is no input data of the model; ignored",
            file=sys.stderr,
        )
    try:
        compiled = compile_ruleset(conversion.document, strict=False)
        decision = compiled.evaluate(conversion.context(values))
    except (RulesetError, EvaluationError) as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    names = {d.table: d.name for d in conversion.decisions}
    for error in decision.to_dict()["errors"]:
        table = error.get("table")
        if table in names:
            print(f"frontline: decision {names[table]!r}: {error['error']}", file=sys.stderr)
    json.dump(conversion.results(decision.tables), out, indent=2, ensure_ascii=False)
    out.write("\n")
    return 0


def _ledger_dir(args: argparse.Namespace) -> Path:
    """The ledger directory under ``--data-dir``, or one sentence on why there is none."""
    from audit.migrate import legacy_ledger

    path = Path(args.data_dir) / LEDGER_DIR
    if not path.is_dir():
        if legacy_ledger(Path(args.data_dir)) is not None:
            raise CommandError(
                f"{args.data_dir} holds a ledger of the earlier layout (ledger.db); run "
                f"`frontline audit migrate --data-dir {args.data_dir}` or start the server "
                "once to move it into segments"
            )
        raise CommandError(
            f"there is no ledger at {path}; start the server once, or pass --data-dir"
        )
    return path


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line now and then
    otherwise (so logs of a long command still show it moving)."""

    def __init__(self, label: str, *, every: float = 2.0) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.every = every if not self.tty else 0.1
        self._last = 0.0

    def update(self, done: float, total: float, note: str = "", *, final: bool = False) -> None:
        import time

        now = time.monotonic()
        if not final and now - self._last < self.every:
            return
        self._last = now
        share = min(1.0, done / total) if total else 1.0
        bar = "█" * int(share * 30) + "░" * (30 - int(share * 30))
        text = f"{self.label} {bar} {share:4.0%}  {note}"
        if self.tty:
            print(f"\r{text}\x1b[K", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


def _audit_reindex(args: argparse.Namespace, out: TextIO) -> int:
    import time

    from audit.index import reindex

    path = _ledger_dir(args)
    bar = Progress("indexing")
    started = time.monotonic()

    def step(records: int, read: int, total: int) -> None:
        bar.update(read, total, f"{records:,} records")

    counts = reindex(path, progress=step)
    total = sum(counts.values())
    bar.update(1, 1, f"{total:,} records", final=True)
    seconds = time.monotonic() - started
    for name, n in counts.items():
        print(f"{path} [{name}]: {n:,} records indexed", file=out)
    print(
        f"frontline: the index of {total:,} records was built again in {seconds:.1f} s",
        file=sys.stderr,
    )
    return 0


def _audit_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from audit.migrate import MigrationError, legacy_ledger, migrate

    data_dir = Path(args.data_dir)
    if legacy_ledger(data_dir) is None:
        raise CommandError(f"{data_dir} holds no ledger of the earlier layout (ledger.db)")
    try:
        moved = migrate(
            data_dir,
            data_dir / LEDGER_DIR,
            progress=lambda n: print(f"frontline: {n:,} records moved", file=sys.stderr),
        )
    except MigrationError as exc:
        raise CommandError(str(exc)) from None
    for name, n in moved.items():
        print(f"{data_dir / LEDGER_DIR} [{name}]: {n:,} records moved", file=out)
    return 0


def _time_arg(name: str, value: str | None, now: datetime) -> str | None:
    """An RFC 3339 time, or an age (``7d``) counted back from ``now``; as the ledger writes it."""
    if value is None:
        return None
    when = time_or_age(value, now)
    if when is None:
        raise CommandError(
            f"{name} {value!r} is neither an RFC 3339 time nor an age such as 7d or 12h"
        )
    return format_time(when, "microseconds")


def _audit_query(args: argparse.Namespace, out: TextIO) -> int:
    from audit.query import LedgerQuery, LedgerReader, QueryError, csv_lines, jsonl_lines

    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1")
    now = datetime.now(UTC)
    query = LedgerQuery(
        customer_id=args.customer,
        agent_id=args.agent,
        ruleset=args.ruleset,
        revision=args.revision,
        kind=args.kind,
        outcome=args.outcome,
        since=_time_arg("--since", args.since, now),
        until=_time_arg("--until", args.until, now),
    )
    try:
        query.validated()
    except QueryError as exc:
        raise CommandError(str(exc)) from None
    reader = LedgerReader(_ledger_dir(args))
    count = 0
    try:
        if args.format == "csv":
            for text in csv_lines(itertools.islice(reader.iterate(query), args.limit)):
                out.write(text)
                count += 1
            count -= 1  # the header
        else:
            for line in jsonl_lines(itertools.islice(reader.bodies(query), args.limit)):
                out.write(line.decode("utf-8"))
                count += 1
    finally:
        reader.close()
    print(f"frontline: {count} record{'' if count == 1 else 's'}", file=sys.stderr)
    return 0


def _audit_public_key(args: argparse.Namespace, out: TextIO) -> int:
    from audit.signing import SigningKeyError, load_signer

    path = Path(args.signing_key) if args.signing_key else Path(args.data_dir) / "signing.key"
    try:
        signer, _ = load_signer(path, create=False)
    except SigningKeyError as exc:
        raise CommandError(str(exc)) from None
    print(signer.public_key, file=out)
    return 0


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except ValueError as exc:
        raise CommandError(f"{path} is not JSON: {exc}") from None


def _audit_verify_proof(args: argparse.Namespace, out: TextIO) -> int:
    from audit.merkle import ProofError
    from audit.proofs import check_proof
    from audit.signing import SigningKeyError

    proof = _read_json(args.file)
    if not isinstance(proof, dict):
        raise CommandError(f"{args.file} is not an inclusion proof (a JSON object)")
    try:
        print(f"ok: {check_proof(proof, args.public_key)}", file=out)
    except SigningKeyError as exc:
        raise CommandError(str(exc)) from None
    except ProofError as exc:
        print(f"{args.file}: not proved: {exc}", file=out)
        return 1
    return 0


def _audit_verify_since(path: Path, checkpoint_file: str, out: TextIO) -> int:
    """1 if a log no longer extends the kept checkpoint(s)."""
    from audit.merkle import ProofError
    from audit.proofs import check_extends
    from audit.segments import LogError, SegmentLog, instances

    kept = _read_json(checkpoint_file)
    heads = kept.get("checkpoints", [kept]) if isinstance(kept, dict) else kept
    if not isinstance(heads, list) or not all(isinstance(h, dict) for h in heads):
        raise CommandError(f"{checkpoint_file} holds no signed tree head")
    failed = 0
    for head in heads:
        instance = str(head.get("instance"))
        if instance not in instances(path):
            print(f"{path} [{instance}]: the checkpoint's instance has no log here", file=out)
            failed += 1
            continue
        try:
            log = SegmentLog(path, instance, readonly=True)
        except LogError as exc:
            raise CommandError(str(exc)) from None
        try:
            print(f"{path} [{instance}]: ok — {check_extends(log, head)}", file=out)
        except ProofError as exc:
            print(f"{path} [{instance}]: {exc}", file=out)
            failed += 1
        finally:
            log.close()
    return 1 if failed else 0


def _public_key(args: argparse.Namespace) -> str | None:
    """The pinned public key: given, or the one of the data directory's signing key."""
    from audit.signing import SigningKeyError, load_signer, parse_public_key, public_key_text

    try:
        if args.public_key:
            return public_key_text(parse_public_key(args.public_key))
        own = Path(args.data_dir) / "signing.key"
        return load_signer(own, create=False)[0].public_key if own.exists() else None
    except SigningKeyError as exc:
        raise CommandError(str(exc)) from None


def _audit_verify(args: argparse.Namespace, out: TextIO) -> int:
    from audit.verify import verify_ledger

    path = _ledger_dir(args)
    extends = _audit_verify_since(path, args.since, out) if args.since else 0
    public_key = _public_key(args)
    report = verify_ledger(
        path,
        progress=lambda n: print(f"frontline: {n:,} records checked", file=sys.stderr),
        public_key=public_key,
    )
    failed = 0
    for name, chain in report.instances.items():
        if chain.reason is None:
            print(
                f"{path} [{name}]: ok — {chain.records:,} records, head seq {chain.head_seq}, "
                f"hash {chain.head_hash}",
                file=out,
            )
        else:
            print(f"{path} [{name}]: broken at record {chain.broken_at}: {chain.reason}", file=out)
        if chain.index_problems:
            for problem in chain.index_problems:
                print(f"{path} [{name}]: index: {problem}", file=out)
            print(
                f"{path} [{name}]: the index disagrees with the segments; "
                f"`frontline audit reindex --data-dir {args.data_dir}` builds it again",
                file=out,
            )
        elif chain.reason is None:
            print(f"{path} [{name}]: index ok — {chain.indexed:,} records indexed", file=out)
        failed += not chain.ok
    if not report.instances:
        print(f"{path}: ok — the ledger is empty", file=out)
    return 1 if failed or extends else 0


def _candidate(args: argparse.Namespace) -> CompiledRuleset:
    """A replay's candidate: the document FILE, or revision --revision of --ruleset as the
    server under --data-dir stored it."""
    if args.file is not None:
        if args.ruleset is not None or args.revision is not None:
            raise CommandError("give a document or --ruleset and --revision, not both")
        try:
            return _load(args.file)
        except RulesetError as exc:
            for problem in exc.errors:
                print(problem, file=sys.stderr)
            raise CommandError(f"{args.file} does not compile") from None
    if args.ruleset is None or args.revision is None:
        raise CommandError("give the candidate: a document, or --ruleset NAME --revision N")
    from adapters.files import FileRulesetStore

    directory = Path(args.data_dir) / "rulesets"
    stored = None
    if directory.is_dir():
        stored = FileRulesetStore(directory).get_revision(args.ruleset, args.revision)
    if stored is None:
        raise CommandError(
            f"{args.data_dir} holds no revision {args.revision} of ruleset {args.ruleset!r}"
        )
    try:
        return compile_ruleset(stored.text, filename=f"{args.ruleset}@{args.revision}").at_revision(
            args.revision
        )
    except RulesetError as exc:
        raise CommandError(
            f"revision {args.revision} of {args.ruleset!r} no longer compiles: {exc}"
        ) from None


def _deploy(args: argparse.Namespace, out: TextIO) -> int:
    """POST the document, naming its file (so that errors read FILE:line:col); the answer
    as JSON on stdout, or the refusal with every located error."""
    from server.schemas import FILENAME_PATTERN

    path = Path(args.file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror or exc}") from None
    params: dict[str, str] = {}
    if re.match(FILENAME_PATTERN, path.name):
        params["filename"] = path.name
    if args.message:
        params["message"] = args.message
    for flag, name in ((args.dry_run, "dry_run"), (args.allow_untested, "allow_untested")):
        if flag:
            params[name] = "true"
    if args.no_activate:
        params["activate"] = "false"
    media = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
    answer = _call(args.url, "/v1/rulesets", params=params, content=body, media=media)
    print(json.dumps(answer, indent=2), file=out)
    return 0


def _retire(args: argparse.Namespace, out: TextIO) -> int:
    answer = _call(args.url, f"/v1/rulesets/{args.name}/retire", json_body={"reason": args.reason})
    print(json.dumps(answer, indent=2), file=out)
    return 0


def _call(
    url: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    content: bytes | None = None,
    media: str = "application/json",
    json_body: dict[str, Any] | None = None,
) -> Any:
    """POST to a running server with the key in $FRONTLINE_KEY: the JSON answer, or a
    CommandError holding the problem's sentence and each located error on its own line."""
    import httpx

    key = os.environ.get("FRONTLINE_KEY")
    if not key:
        raise CommandError("set FRONTLINE_KEY to an author's key (frontline serve prints them)")
    if json_body is not None:
        content, media = json.dumps(json_body).encode(), "application/json"
    try:
        response = httpx.post(
            url.rstrip("/") + path,
            params=params,
            content=content,
            headers={"Authorization": f"Bearer {key}", "Content-Type": media},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach {url}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.is_success:
        return answer
    if not isinstance(answer, dict):
        raise CommandError(f"{url} answered {response.status_code}: {response.text[:200]}")
    lines = [str(answer.get("detail") or answer.get("title") or response.status_code)]
    for error in answer.get("errors") or ():
        if isinstance(error, dict) and "message" in error:
            where = error.get("file") or "<document>"
            if error.get("line") is not None:
                where += f":{error['line']}:{error.get('column') or 1}"
            lines.append(f"{where}: {error['message']}")
    raise CommandError("\n".join(lines))


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    from audit.query import LedgerReader
    from audit.replay import replay_range

    candidate = _candidate(args)
    if args.examples < 0:
        raise CommandError("--examples must be 0 or more")
    now = datetime.now(UTC)
    since = _time_arg("--since", args.since, now)
    until = _time_arg("--until", args.until, now)
    reader = LedgerReader(_ledger_dir(args))
    bar = Progress("replaying")

    def step(done: int, total: int | None) -> None:
        of = f" of {total:,}" if total is not None else ""
        bar.update(done, total or 0, f"{done:,}{of} decisions")

    try:
        report = replay_range(
            reader, candidate, since=since, until=until, examples=args.examples, progress=step
        )
    finally:
        reader.close()
    read = report.replayed + report.skipped
    bar.update(1, 1, f"{read:,} of {read:,} decisions", final=True)
    json.dump(report.to_dict(), out, indent=2, ensure_ascii=False)
    out.write("\n")
    print(
        f"frontline: {report.changed} of {report.replayed} decisions would change",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()

"""Test cases generated from a Sigma rule's own condition: events that must match and events that must not.

`solve(node, want)` walks the condition and returns assignments (field path -> value, or ABSENT) under
which the condition is `want` by construction: an `All` is true when each part is, false when one part
is false and the others true (one negative per part); an `AnyOf` is true when one branch is (one
positive per branch), false when all are; `Not` swaps. A field's value is made from the rule's own
value: the literal itself, wildcards filled, an example of a regular expression, an address inside the
network; a false one is a near miss (one character off, a prefix on a suffix match) or the field left
out. Parts that must hold on one field at once are checked against each other and dropped if they
cannot.

Each assignment becomes a partial CloudTrail record for `trailwarden rules test` (which fills in the
rest), so every Sigma rule, bundled or the user's, is tested by the same means as a built-in rule.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import re._parser as sre  # the standard library's parser of regular expressions, to build an example
from collections.abc import Iterator
from typing import Any

from sigma.types import SpecialChars

from pipeline.cases import BASE_TIME
from pipeline.finding import iso_time
from pipeline.rule import Case
from pipeline.sigma.checks import Boolean, Cidr, Compare, Exists, FieldRef, Glob, Null, Number, Regex, Test
from pipeline.sigma.condition import All, Leaf, Node, Not, fields_read
from pipeline.sigma.detection import Detection
from pipeline.sigma.fields import Path, text

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
Env = dict[Path, Any]
MAX_ALTERNATIVES = 12
# Fields CloudTrail writes as objects: a "contains" on one is given an object holding the text.
OBJECTS = {"requestParameters", "responseElements", "additionalEventData", "userIdentity", "serviceEventDetails"}
# Fields every CloudTrail record has: left out, `complete_record` would fill them in, so they are written null.
DEFAULTED = {
    "userIdentity",
    "eventTime",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "readOnly",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "eventCategory",
    "eventVersion",
    "tlsDetails",
}
# Real values for eventSource and eventName where a negative needs another one.
REAL = {
    ("eventSource",): ("sts.amazonaws.com", "ec2.amazonaws.com"),
    ("eventName",): ("GetCallerIdentity", "DescribeInstances"),
}
# What the other forms of a case rewrite (`pipeline.ruletest`): a rule reading one of them is not run in that form.
REWRITTEN = {
    "console": ("sourceIPAddress", "userAgent", "sessionCredentialFromConsole", "userIdentity.invokedBy"),
    "cloudformation": ("sourceIPAddress", "userAgent", "userIdentity.invokedBy"),
}


# --- values of one field ---------------------------------------------------------------------------------


def _fill(pieces: tuple[str | SpecialChars, ...]) -> str:
    return "".join(p if isinstance(p, str) else "x" for p in pieces)


def _near_miss(glob: Glob) -> str | None:
    """A text close to the pattern that it does not match."""
    pieces = glob.pieces
    if not pieces:
        return "x"
    literal = [p for p in pieces if isinstance(p, str)]
    if not literal:
        return None  # "*" or "?" only: any value matches
    if glob.literal is not None:
        return glob.literal + "_"
    if all(isinstance(p, str) or p is SpecialChars.WILDCARD_MULTI for p in pieces):
        if isinstance(pieces[0], str) and pieces[-1] is SpecialChars.WILDCARD_MULTI and len(pieces) == 2:
            return "_" + pieces[0]  # startswith
        if isinstance(pieces[-1], str) and pieces[0] is SpecialChars.WILDCARD_MULTI and len(pieces) == 2:
            return pieces[-1] + "_"  # endswith
        if len(pieces) == 3 and isinstance(pieces[1], str) and len(pieces[1]) > 0:
            word = pieces[1]  # contains: the same length, its last character changed
            return word[:-1] + ("_" if word[-1] != "_" else "-")
    return None


def _regex_example(pattern: str) -> str | None:
    """One string the pattern can match (None for constructs this small generator does not follow)."""
    try:
        parsed = sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None

    def emit(items: Any, depth: int = 0) -> str:
        if depth > 50:
            raise ValueError("too deep")
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "NOT_LITERAL":
                out.append("x" if arg != ord("x") else "y")
            elif name == "ANY":
                out.append("x")
            elif name == "IN":
                out.append(_class_member(arg))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, _, sub = arg
                out.append(emit(sub, depth + 1) * low)
            elif name == "SUBPATTERN":
                out.append(emit(arg[-1], depth + 1))
            elif name == "ATOMIC_GROUP":
                out.append(emit(arg, depth + 1))
            elif name == "BRANCH":
                out.append(emit(arg[1][0], depth + 1))
            elif name == "AT":
                continue
            else:
                raise ValueError(name)
        return "".join(out)

    try:
        return emit(parsed)
    except (ValueError, TypeError, IndexError):
        return None


def _class_member(items: Any) -> str:
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            return "~" if not any(str(o) == "LITERAL" and a == ord("~") for o, a in items) else "!"
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return {"CATEGORY_DIGIT": "7", "CATEGORY_SPACE": " ", "CATEGORY_WORD": "w"}.get(str(arg).upper(), "!")
    raise ValueError("empty class")


def candidates(test: Test, want: bool) -> list[Any]:
    """Values under which `test` is `want`: the informative ones first."""
    if isinstance(test, Glob):
        if want:
            return [_fill(test.pieces)]
        miss = _near_miss(test)
        return [miss, ABSENT] if miss is not None else [ABSENT]
    if isinstance(test, Regex):
        if want:
            example = _regex_example(("(?" + test.flags + ")" if test.flags else "") + test.pattern)
            return [example] if example is not None and test.one(example) else []
        return [ABSENT]
    if isinstance(test, Cidr):
        if want:
            net = test.network
            return [str(net.network_address + (1 if net.num_addresses > 2 else 0))]
        outside = ipaddress.ip_address("203.0.113.9" if test.network.version == 4 else "2001:db8:ffff::9")
        return ([str(outside)] if outside not in test.network else []) + [ABSENT]
    if isinstance(test, Number):
        value = float(test.spelling) if "." in test.spelling or "e" in test.spelling else int(test.spelling)
        return [value] if want else [value + 1, ABSENT]
    if isinstance(test, Boolean):
        return [test.value] if want else [not test.value, ABSENT]
    if isinstance(test, Null):
        return [ABSENT] if want else ["x"]
    if isinstance(test, Exists):
        return (["x"] if test.exists else [ABSENT]) if want else ([ABSENT] if test.exists else ["x"])
    if isinstance(test, Compare):
        true_step, false_step = {"lt": (-1, 0), "lte": (0, 1), "gt": (1, 0), "gte": (0, -1)}[test.op]
        number = test.number + (true_step if want else false_step)
        return [int(number) if number == int(number) else number] + ([] if want else [ABSENT])
    return []


# --- the condition ---------------------------------------------------------------------------------------


def _holds(test: Test, value: Any) -> bool:
    return test.matches([] if value is ABSENT else [text(value)])


def _conflicts(env: Env, path: Path, value: Any) -> bool:
    """A present value under a path another present value is a prefix of (one cannot be both)."""
    if value is ABSENT:
        return any(
            other[: len(path)] == path and len(other) > len(path) and v is not ABSENT for other, v in env.items()
        )
    for other, v in env.items():
        if v is ABSENT:
            if path[: len(other)] == other and len(path) > len(other):
                return True
            continue
        if other != path and (other[: len(path)] == path or path[: len(other)] == other):
            return True
    return False


def _unwrap(value: Any) -> Any:
    return value["text"] if isinstance(value, dict) and set(value) == {"text"} else value


def _wrap(path: Path, test: Test, value: Any) -> Any:
    """A text a "contains" puts in a field CloudTrail writes as an object: an object holding it."""
    if (
        isinstance(value, str)
        and len(path) == 1
        and path[0] in OBJECTS
        and isinstance(test, Glob)
        and test.literal is None
    ):
        return {"text": value}
    return value


def _leaf(leaf: Leaf, want: bool, env: Env, asked: Asked) -> list[tuple[Env, Asked]]:
    test, path = leaf.test, leaf.path
    if isinstance(test, FieldRef):
        return _fieldref(leaf, test, want, env, asked)
    before = asked.get(path, ())
    wanted = (*before, (test, want))
    options = candidates(test, want)
    if path in REAL:  # every record has both; a negative names a real call that is not the rule's
        options = [v for v in REAL[path] if not want and not _holds(test, v)] + [c for c in options if c is not ABSENT]
    if path in env:
        current = env[path]
        if _holds(test, current) == want:
            return [(env, {**asked, path: wanted})]
        # Another value that satisfies what was asked of the field before as well: two texts joined.
        old = _unwrap(current)
        options = [v for c in options if isinstance(c, str) and isinstance(old, str) for v in (old + c, c + old)]
    out = []
    for value in options:
        value = _wrap(path, test, value)
        if all(_holds(t, value) == w for t, w in wanted) and not _conflicts(env, path, value):
            out.append(({**env, path: value}, {**asked, path: wanted}))
    return out[:2]


def _fieldref(leaf: Leaf, test: FieldRef, want: bool, env: Env, asked: Asked) -> list[tuple[Env, Asked]]:
    mine, other = leaf.path, test.other
    pairs: list[tuple[Any, Any]] = [("same-value-7", "same-value-7")]
    if test.starts or test.ends:
        pairs = [(("pre-" if test.ends else "") + "value-7" + ("-post" if test.starts else ""), "value-7")]
    if not want:
        pairs = [("value-a", "value-b"), (ABSENT, "value-b")]
    out = []
    for a, b in pairs:
        if (mine in env and env[mine] != a) or (other in env and env[other] != b):
            continue
        if not _conflicts(env, mine, a) and not _conflicts({**env, mine: a}, other, b):
            out.append(({**env, mine: a, other: b}, asked))
    return out


State = tuple[Env, "Asked"]
Asked = dict[Path, tuple[tuple[Test, bool], ...]]  # what each field was asked to be, to keep it so


def _solve(node: Node, want: bool, state: State) -> list[State]:
    env, asked = state
    if isinstance(node, Leaf):
        return _leaf(node, want, env, asked)
    if isinstance(node, Not):
        return _solve(node.arg, not want, state)
    conjunction = isinstance(node, All)
    if conjunction == want:  # every part must be `want`
        states = [state]
        for arg in node.args:
            states = [s2 for s in states for s2 in _solve(arg, want, s)][:MAX_ALTERNATIVES]
        return states
    out: list[State] = []  # one part `want`; for a false conjunction the others true if they can be
    for i, arg in enumerate(node.args):
        states = _solve(arg, want, state)
        if conjunction:
            strict = states
            for j, other in enumerate(node.args):
                if j != i:
                    strict = [s2 for s in strict for s2 in _solve(other, not want, s)][:MAX_ALTERNATIVES]
            states = strict or states
        out += states[:2]
        if len(out) >= MAX_ALTERNATIVES:
            break
    return out[:MAX_ALTERNATIVES]


def solve(node: Node, want: bool) -> list[Env]:
    """Assignments under which `node` is `want` (at most MAX_ALTERNATIVES, each different)."""
    return _unique([env for env, _ in _solve(node, want, ({}, {}))])


def _unique(envs: list[Env]) -> list[Env]:
    seen, out = set(), []
    for env in envs:
        marker = repr(sorted(env.items(), key=lambda kv: kv[0]))
        if marker not in seen:
            seen.add(marker)
            out.append(env)
    return out


# --- records and cases -----------------------------------------------------------------------------------


def record(env: Env) -> dict[str, Any] | None:
    """A partial CloudTrail record with the assignment's values (None if the paths do not fit together)."""
    out: dict[str, Any] = {"eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity"}
    for path, value in sorted(env.items(), key=lambda kv: len(kv[0])):
        if value is ABSENT:
            if len(path) == 1:
                if path[0] in DEFAULTED:
                    out[path[0]] = None
                else:
                    out.pop(path[0], None)
            elif path[0] in DEFAULTED and path[0] not in out:
                out[path[0]] = {}
            continue
        node = out
        for step in path[:-1]:
            nxt = node.get(step)
            if nxt is None:
                nxt = node[step] = {}
            elif not isinstance(nxt, dict):
                return None
            node = nxt
        node[path[-1]] = value
    return out


def _describe(env: Env) -> str:
    shown = []
    for path, value in env.items():
        name = ".".join(path)
        shown.append(f"{name} absent" if value is ABSENT else f"{name}={text(value)[:60]}")
    return ", ".join(shown) or "any event"


def _no_form(read: set[str], partial: dict[str, Any]) -> dict[str, str]:
    from pipeline.ruletest import cloudformation_form, console_form  # cycle: ruletest -> pack -> rules -> sigma

    out = {}
    for form, rewritten in REWRITTEN.items():
        touched = sorted(
            f for f in read if any(f == r or r.startswith(f + ".") or f.startswith(r + ".") for r in rewritten)
        )
        if touched:
            out[form] = f"the Sigma rule reads {', '.join(touched)}, which the {form} form rewrites"
    if "console" not in out and console_form(partial) is None:
        out["console"] = "a sign-in, or a call AWS made itself, has no console form"
    if "cloudformation" not in out and cloudformation_form(partial) is None:
        out["cloudformation"] = "a read or a sign-in is not something a stack does"
    return out


def examples(node: Node) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Partial records that match the condition, and records that do not."""

    def records(envs: list[Env]) -> Iterator[tuple[Env, dict[str, Any]]]:
        for env in envs:
            built = record(env)
            if built is not None:
                yield env, built

    return ([r for _, r in records(solve(node, True))], [r for _, r in records(solve(node, False))])


def cases_for(d: Detection) -> list[Case]:
    """The rule's test cases: each positive assignment expects one finding, each negative none."""
    read = fields_read(d.node)
    cases: list[Case] = []
    for env in solve(d.node, True):
        built = record(env)
        if built is not None:
            cases.append(
                Case(f"matches #{len(cases) + 1}: {_describe(env)}", built, expect=1, no_form=_no_form(read, built))
            )
    positives = len(cases)
    for env in solve(d.node, False):
        built = record(env)
        if built is not None:
            cases.append(Case(f"no match #{len(cases) - positives + 1}: {_describe(env)}", built, expect=0))
    return cases


# --- correlations ----------------------------------------------------------------------------------------


class _CannotBuild(Exception):
    pass


def _put(record: dict[str, Any], path: Path, value: Any) -> None:
    node = record
    for step in path[:-1]:
        nxt = node.get(step)
        if nxt is None:
            nxt = node[step] = {}
        elif not isinstance(nxt, dict):
            raise _CannotBuild(".".join(path))
        node = nxt
    node[path[-1]] = value


def correlation_cases(
    kind: str,
    sources: list[tuple[str, Detection, list[tuple[str, Path]]]],
    count: int,
    window: float,
    value: Path | None,
) -> list[Case]:
    """Cases of a correlation: the referenced rules' own matches, grouped under one key, within the timespan
    (one finding), and the same falling short (one fewer event, value or rule, or the wrong order: none).
    Empty when the rules' matches cannot carry the group-by values (`rules test` then says so)."""
    from pipeline.ruletest import complete_record  # cycle: ruletest -> pack -> rules -> sigma

    step = min(10.0, window / (count + 2))
    read = set().union(*(fields_read(d.node) for _, d, _ in sources)) | {n for _, _, f in sources for n, _ in f}

    def event(source: int, at: int, group: str = "group-1", distinct: str | None = None) -> dict[str, Any]:
        ref, d, fields = sources[source]
        positives, _ = examples(d.node)
        if not positives:
            raise _CannotBuild(ref)
        built = copy.deepcopy(positives[0])
        for _, path in fields:
            _put(built, path, group)
        if value is not None and distinct is not None:
            _put(built, value, distinct)
        built["eventTime"] = iso_time(BASE_TIME + at * step)
        if not d.predicate(complete_record(built)):
            raise _CannotBuild(ref)
        return built

    try:
        if kind == "temporal_ordered":
            pos = [event(0, 0), event(1, 1)]
            negs = {"the second rule first": [event(1, 0), event(0, 1)], "the first rule alone": [event(0, 0)]}
        elif kind == "temporal":
            pos = [event(i, i) for i in range(count)]
            negs = {"one rule fewer": pos[:-1]}
        elif value is not None:
            pos = [event(0, i, distinct=f"value-{i}") for i in range(count)]
            negs = {
                f"{count - 1} distinct values": [
                    event(0, i, distinct=f"value-{i % max(count - 1, 1)}") for i in range(count)
                ]
                if count > 1
                else []
            }
        else:
            pos = [event(0, i) for i in range(count)]
            negs = {"one event fewer": pos[:-1]}
            if sources[0][2] and count > 1:
                negs["the events split between two groups"] = [
                    event(0, i, group=f"group-{i % 2}") for i in range(count)
                ]
    except _CannotBuild:
        return []
    partial = pos[0]
    cases = [
        Case(
            f"matches: {len(pos)} events under one key within the timespan",
            pos,
            expect=1,
            no_form=_no_form(read, partial),
        )
    ]
    cases += [Case(f"no match: {name}", events, expect=0) for name, events in negs.items() if events]
    return cases

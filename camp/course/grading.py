"""Helpers for the graded exercises' test cells (read-only in the lessons, run by nbgrader).

`refused(*functions)` makes camp's (or a library's) own implementation unusable while a learner's function runs,
so a test can tell a written answer from a borrowed one. `unittest.mock.patch.object` only replaces the name
in its module: a learner who wrote `from camp.rewards import distinct_n` at the top of the cell still holds
the original function and walks past the mock. `refused` swaps the code inside the function object itself, so
every name bound to it, however it was imported, raises.

>>> from camp import rewards
>>> from camp.rewards import distinct_n as borrowed  # imported before the test, under another name
>>> with refused(rewards.distinct_n):
...     borrowed(["a b a b"], 1)
Traceback (most recent call last):
AssertionError: write it yourself (the tests refuse camp.rewards.distinct_n)
>>> borrowed(["a b a b"], 1)  # back to normal after the block
[0.5]
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _stub(message: str, where: str, free: int) -> types.CodeType:
    """Code that raises AssertionError("<message> (the tests refuse <where>)"), with `free` closure variables so
    that it fits the __code__ slot of a function with that many (CPython checks only their number)."""
    names = [f"_v{i}" for i in range(free)]
    source = (f"def _factory({', '.join(names)}):\n"
              f"    def refuse(*args, **kwargs):\n"
              f"        {'(' + ', '.join(names) + ',)' if names else 'None'}\n"
              f"        raise AssertionError({f'{message} (the tests refuse {where})'!r})\n"
              f"    return refuse\n")
    scope: dict = {}
    exec(compile(source, "<refused>", "exec"), scope)  # noqa: S102 - our own fixed template, no user input
    return scope["_factory"](*range(free)).__code__


def _target(fn) -> types.FunctionType:
    """The Python function whose code to swap: a function, a method's function, or a class's own __init__."""
    if isinstance(fn, type):
        init = vars(fn).get("__init__")
        if not isinstance(init, types.FunctionType):
            raise TypeError(f"refused() takes classes that define their own __init__ in Python; {fn.__name__} "
                            "does not: patch it with unittest.mock instead")
        return init
    fn = getattr(fn, "__func__", fn)  # a bound or class method: its function
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"refused() takes Python functions; {fn!r} is a {type(fn).__name__}: patch it with "
                        "unittest.mock instead")
    return fn


@contextmanager
def refused(*functions: Callable, message: str = "write it yourself") -> Iterator[None]:
    """Inside the block, calling any of `functions` raises `AssertionError(message ...)`, whatever name it is
    called by. Takes Python functions (decorated ones and closures too), methods, and classes, whose own
    `__init__` is refused; anything else (a builtin, a C function) is refused with TypeError."""
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    targets = [(_target(fn), f"{fn.__module__}.{fn.__qualname__}") for fn in functions]
    try:
        for fn, where in targets:
            swapped.append((fn, fn.__code__))
            fn.__code__ = _stub(message, where, len(fn.__code__.co_freevars))
        yield
    finally:
        for fn, code in reversed(swapped):
            fn.__code__ = code

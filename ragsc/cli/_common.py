"""What several ``ragsc`` commands share: the provenance line a command writes into what it saves. (Their
``--out`` paths are checked by :mod:`ragsc.targets`.)"""

from __future__ import annotations

import shlex

import typer


def provenance(ctx: typer.Context) -> str:
    """The command line that re-runs this command with the same settings (a saved model's
    ``info["command"]``).

    ``ragsc``, the (sub-)command names, then every parameter in the command's order with the value it had,
    defaults included (a later change of a default does not change what the line means); options left
    unset (None) and switches without an ``--no-`` form that are off are left out. Words are quoted for a
    POSIX shell.

    Parameters
    ----------
    ctx
        The command's context (a ``ctx: typer.Context`` parameter of the command).

    Returns
    -------
    str
        E.g. ``ragsc distill train --store stores/a --out students/b --modality image ...``.
    """
    names = []
    c = ctx
    while c.parent is not None:  # the root's own name depends on how it was started (ragsc, python -m)
        names.append(c.info_name)
        c = c.parent
    words = ["ragsc", *reversed(names)]
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if value is None or not p.expose_value:
            continue
        values = list(value) if p.multiple or p.nargs != 1 else [value]
        if p.param_type_name == "argument":
            words += [str(v) for v in values]
            continue
        name = max(p.opts, key=len)  # the long form, where an option has one
        if p.is_flag:
            if value:
                words.append(name)
            elif p.secondary_opts:
                words.append(max(p.secondary_opts, key=len))
            continue
        for v in values:
            words += [name, str(v)]
    return shlex.join(words)

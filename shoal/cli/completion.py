"""`shoal completion bash|zsh|fish`: shell completion scripts made from the argparse tree.

Written out from the parser rather than through argcomplete: that would run Python (and
import it at start-up) on every TAB. The tree becomes tables keyed by a command path
("shoal job list"): its subcommands (and positional choices), its options, the options that
take a value, and each option's choices. Each shell gets a small function that walks the
words typed so far to find the path, then offers from those tables; after `--` (a task's
command) and for free-form values it leaves completion to the shell (file names)."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

from shoal.cli.base import EXIT_OK


@dataclass
class Command:
    """One command path's completions."""

    words: list[str] = field(default_factory=list)  # subcommands, then positional choices
    options: list[str] = field(default_factory=list)
    valued: list[str] = field(default_factory=list)  # options that take a value
    choices: dict[str, list[str]] = field(default_factory=dict)  # option -> its values
    helps: dict[str, str] = field(default_factory=dict)  # word or option -> one line (fish shows it)


def tree(parser: argparse.ArgumentParser, path: str = "shoal") -> dict[str, Command]:
    """Every command path under `parser`, each with what may follow it."""
    found: dict[str, Command] = {}
    here = found[path] = Command()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                here.words.append(name)
                here.helps[name] = _line(helps.get(name, ""))
                found.update(tree(child, f"{path} {name}"))
        elif action.option_strings:
            if action.help == argparse.SUPPRESS:
                continue
            here.options += action.option_strings
            for option in action.option_strings:
                here.helps[option] = _line(action.help or "")
                if action.nargs != 0:
                    here.valued.append(option)
                    if action.choices:
                        here.choices[option] = [str(c) for c in action.choices]
        elif action.choices:
            here.words += [str(c) for c in action.choices]
    return found


def _line(text: str) -> str:
    text = " ".join(text.replace("%%", "%").split())
    return text if len(text) <= 60 else text[:59] + "…"


def script(args: argparse.Namespace, head: str) -> int:
    from shoal.cli.main import build_parser

    del head  # nothing to ask the head node
    commands = tree(build_parser())
    print({"bash": bash, "zsh": zsh, "fish": fish}[args.shell](commands), end="")
    return EXIT_OK


def _q(words: list[str] | str) -> str:
    return shlex.quote(words if isinstance(words, str) else " ".join(words))


def _tables(commands: dict[str, Command], declare: str) -> str:
    """The four lookup tables as shell associative arrays (bash and zsh read them alike)."""
    lines = []
    for name, pick in (("words", lambda c: {"": c.words}), ("opts", lambda c: {"": c.options}),
                       ("valued", lambda c: {"": c.valued}), ("choices", lambda c: c.choices)):
        lines.append(f"{declare} _shoal_{name}=(")
        for path, command in commands.items():
            for suffix, values in pick(command).items():
                if values:
                    key = f"{path} {suffix}" if suffix else path
                    lines.append(f"    [{_q(key)}]={_q(values)}")
        lines.append(")")
    return "\n".join(lines) + "\n"


# The path of the words before the cursor: subcommands move down the tree, options are
# skipped (with their value when they take one), `--` ends it (the task's command follows).
_WALK = """\
    local _p=shoal _w _skip= _i
    for ((_i = {first}; _i < {cword}; _i++)); do
        _w=${{{words}[_i]}}
        if [[ -n $_skip ]]; then _skip=; continue; fi
        [[ $_w == -- ]] && return 0
        if [[ $_w == -* ]]; then
            [[ $_w != *=* && " ${{_shoal_valued[$_p]}} " == *" $_w "* ]] && _skip=1
            continue
        fi
        [[ " ${{_shoal_words[$_p]}} " == *" $_w "* ]] && _p="$_p $_w"
    done
"""


def bash(commands: dict[str, Command]) -> str:
    return f"""\
# shoal completion for bash: source <(shoal completion bash)
{_tables(commands, "declare -gA")}
_shoal() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    COMPREPLY=()
{_WALK.format(first=1, cword="COMP_CWORD", words="COMP_WORDS")}\
    if [[ -n $_skip ]]; then
        local choices=${{_shoal_choices["$_p $prev"]}}
        [[ -n $choices ]] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${{_shoal_opts[$_p]}}" -- "$cur"))
    elif [[ -n ${{_shoal_words[$_p]}} ]]; then
        COMPREPLY=($(compgen -W "${{_shoal_words[$_p]}}" -- "$cur"))
    fi
}}
complete -o default -F _shoal shoal
"""


def zsh(commands: dict[str, Command]) -> str:
    # zsh arrays count from 1 and `path` is taken (it is $PATH): hence _p and the offsets.
    return f"""\
#compdef shoal
# shoal completion for zsh: source <(shoal completion zsh)   (after compinit)
{_tables(commands, "typeset -gA")}
_shoal() {{
    local cur=${{words[CURRENT]}} prev=${{words[CURRENT-1]}}
{_WALK.format(first=2, cword="CURRENT", words="words")}\
    if [[ -n $_skip ]]; then
        local choices=${{_shoal_choices[$_p $prev]}}
        if [[ -n $choices ]]; then compadd -- ${{=choices}}; else _files; fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        compadd -- ${{=_shoal_opts[$_p]}}
    elif [[ -n ${{_shoal_words[$_p]}} ]]; then
        compadd -- ${{=_shoal_words[$_p]}}
    else
        _files
    fi
}}
compdef _shoal shoal
"""


def fish(commands: dict[str, Command]) -> str:
    out = ["# shoal completion for fish: shoal completion fish | source",
           "function __shoal_path",
           "    set -l p shoal",
           "    set -l skip 0",
           "    set -l typed (commandline -opc)",
           "    set -e typed[1]",
           "    for w in $typed",
           "        if test $skip = 1; set skip 0; continue; end",
           "        if test \"$w\" = --; echo --; return; end",
           "        if string match -q -- '-*' $w",
           "            if not string match -q -- '*=*' $w; and contains -- $w (__shoal_valued $p)",
           "                set skip 1",
           "            end",
           "            continue",
           "        end",
           "        if contains -- $w (__shoal_words $p); set p \"$p $w\"; end",
           "    end",
           "    echo $p",
           "end"]
    for name, pick in (("words", lambda c: c.words), ("valued", lambda c: c.valued)):
        out += [f"function __shoal_{name}", "    switch $argv[1]"]
        for path, command in commands.items():
            if pick(command):
                words = " ".join(map(_q, pick(command)))
                out += [f"        case {_q(path)}", f"            printf '%s\\n' {words}"]
        out += ["    end", "end"]
    for path, command in commands.items():
        at = f"-n {_q(f'test (__shoal_path) = {_q(path)}')}"
        # -f: where there are subcommands, file names are not what comes next.
        for word in command.words:
            about = command.helps.get(word, "") or word
            out.append(f"complete -c shoal {at} -f -a {_q(word)} -d {_q(about)}")
        for option in command.options:
            flag = f"-l {_q(option[2:])}" if option.startswith("--") else f"-s {_q(option[1:])}"
            spec = f"complete -c shoal {at} {flag} -d {_q(command.helps.get(option, '') or option)}"
            if option in command.choices:
                spec += f" -x -a {_q(command.choices[option])}"
            elif option in command.valued:
                spec += " -r -F"
            out.append(spec)
    return "\n".join(out) + "\n"

"""Command-line programs; each bin/ script and alexnet-* command calls one `run()` here."""

import sys

from absl import app, flags


def run_app(main, module_name, doc):
    """absl's app.run(main), with `--help` showing this program's docstring and flags.

    absl's --help prints the docstring and key flags of `__main__`, which for bin/
    scripts and installed commands is a three-line wrapper; lend it ours instead.
    """
    sys.modules["__main__"].__doc__ = doc
    for flag in flags.FLAGS.get_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)

"""Command-line programs; each bin/ script and alexnet-* command calls one `run()` here."""

import sys

from absl import app, flags, logging


def run_app(main, module_name, doc):
    """absl's app.run(main), with `--help` showing this program's docstring and flags.

    absl's --help prints the docstring and key flags of `__main__`, which for bin/
    scripts and installed commands is a three-line wrapper; lend it ours instead.
    """
    sys.modules["__main__"].__doc__ = doc
    for flag in flags.FLAGS.get_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def quiet_main(argv):
        # Results and progress go to stdout; absl/TensorFlow INFO lines (checkpoint
        # sharding timings and the like) only with an explicit --verbosity=0.
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        return main(argv)

    app.run(quiet_main)

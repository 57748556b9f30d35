"""Command-line programs; each bin/ script and alexnet-* command calls one `run()` here."""

import sys

from absl import app, flags, logging


def define_checkpoint_flag():
    """--checkpoint, as bin/evaluate, bin/export and bin/report take it (training/workdir.py
    resolves it: workdir.checkpoint_path)."""
    return flags.DEFINE_string(
        "checkpoint", "best", "With --workdir: 'best' (best validation error), 'latest', a "
        "checkpoint folder or a checkpoint prefix such as RUN/checkpoints/ckpt-12.")


def run_app(main, module_name, doc):
    """absl's app.run(main), with `--help` showing this program's docstring and flags.

    absl's --help prints the docstring and key flags of `__main__`, which for bin/
    scripts and installed commands is a three-line wrapper; lend it ours instead.
    """
    sys.modules["__main__"].__doc__ = doc
    for flag in flags.FLAGS.get_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def parse_flags(argv):
        try:
            parsed = app.parse_flags_with_usage(argv)
        except OSError as e:  # a --config.FIELD override of a config file that did not load
            _exit_if_config_missing(argv, e)
            raise
        except (AttributeError, KeyError) as e:  # ml_collections: --config.FIELD it does not have
            flag, field = _unknown_config_override(argv)
            hint = str(e).strip("\"' ")
            hint = hint[hint.index("Did you mean"):].strip("\"' ") if "Did you mean" in hint else ""
            sys.stderr.write(f"FATAL Flags parsing error: {flag}: the config has no field "
                             f"{field!r}{' (' + hint + ')' if hint else ''}; "
                             "keras_alexnet/config.py lists every field\n"
                             "Pass --helpshort or --helpfull to see help on flags.\n")
            sys.exit(1)
        _exit_if_config_missing(argv)
        return parsed

    def quiet_main(argv):
        # Results and progress go to stdout; absl/TensorFlow INFO lines (checkpoint
        # sharding timings and the like) only with an explicit --verbosity=0.
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        return main(argv)

    app.run(quiet_main, flags_parser=parse_flags)


def _exit_if_config_missing(argv, error=None):
    """One sentence, status 1, when --config names a file that could not be loaded.

    ml_collections keeps the loading error until the config is first used (by an override
    while parsing, `error`; or by the program), then raises it as two chained tracebacks
    that do not name the flag.
    """
    if error is None:
        value = flags.FLAGS["config"].value if "config" in flags.FLAGS else None
        error = getattr(value, "_error", None) if type(value).__name__ == "_ErrorConfig" else None
    elif "failure to load" not in str(error):
        return
    if error is None:
        return
    args = list(argv[1:]) + [""]
    path = next((a.split("=", 1)[1] if "=" in a else args[i + 1] for i, a in enumerate(args)
                 if a.split("=", 1)[0] == "--config"), "?")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    why = lines[-1] if lines else str(error)
    why = why.split("] ", 1)[1] if why.startswith("[Errno") and "] " in why else why
    sys.stderr.write(f"FATAL Flags parsing error: --config={path}: cannot load it ({why}); "
                     "give a config file such as configs/demo.py\n")
    sys.exit(1)


def _unknown_config_override(argv):
    """(flag, dotted field) of the first --config.a.b=... override naming no field of the config."""
    try:
        config = flags.FLAGS["config"].value  # None while its overrides are being parsed
    except KeyError:
        config = None
    if config is None:  # every config file starts from the base config
        from keras_alexnet import config as config_lib
        config = config_lib.get_config()
    for arg in argv[1:]:
        if not arg.startswith("--config."):
            continue
        name = arg.split("=", 1)[0]
        path, node = name[len("--config."):].split("."), config
        for i, part in enumerate(path):
            if node is None or not hasattr(node, "keys") or part not in node:
                return name, ".".join(path[:i + 1])
            node = node[part]
    return "--config.*", "?"

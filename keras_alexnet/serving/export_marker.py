"""The mark bin/export leaves in a version folder while writing it, so it deletes only its own.

export.save writes a version under a hidden `.tmp-*` name and renames it when
complete; an export that was killed leaves that folder behind, and the next
export removes it. A folder is removed only if it carries this marker, with this
text: written first into each temporary folder, removed just before the rename.
A user's `.tmp-important/` (or a temporary of an export older than the marker)
is never deleted, only named in a warning.
"""
import os

MARKER_FILENAME = ".keras_alexnet-export-in-progress"
_TEXT = "bin/export (keras_alexnet) is writing this model version; removed when it is complete\n"


def mark(folder):
    with open(os.path.join(folder, MARKER_FILENAME), "w") as f:
        f.write(_TEXT)


def unmark(folder):
    path = os.path.join(folder, MARKER_FILENAME)
    if os.path.exists(path):
        os.remove(path)


def is_marked(folder):
    """Whether `folder` (a real folder, not a symlink) holds the marker with its text."""
    path = os.path.join(folder, MARKER_FILENAME)
    try:
        if os.path.islink(folder) or os.path.islink(path) or os.path.getsize(path) > 4096:
            return False
        with open(path) as f:
            return f.read() == _TEXT
    except (OSError, UnicodeDecodeError):
        return False

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Part of Tempo lab (MIT).
"""Role-local module: inspect or converge a node's tempod folders and small files in
one module run.

Why a module of our own: each ``ansible.builtin.copy``/``template`` task costs two
module runs per host even when nothing changed (a stat, then the file attributes), and
each module run is a Python start on the node.  A re-deploy of 16 lab nodes spent most
of its time there (docs/deploy.md "Speed").  This module does what those tasks did --
create folders, compare contents, write atomically, set mode and owner, report a
diff -- for all of them at once.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tempod_files
short_description: Inspect or converge tempod's folders and files in one module run
description:
  - Creates folders, writes small text files when their content, mode or owner differ
    (atomically, through a temporary file in the same folder), and reads files back.
  - Supports check mode and diff mode (not for I(secret_files)).
options:
  directories:
    description: Folders to create (with parents) and whose mode and owner to set.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      mode: {description: Octal mode as a string., type: str, default: "0755"}
  files:
    description: Files and their wanted content.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path; its folder must exist or be in I(directories)., type: path, required: true}
      content: {description: Wanted content (text)., type: str, required: true}
      mode: {description: Octal mode as a string., type: str, default: "0644"}
  secret_files:
    description: Like I(files), but their content is never logged nor shown in a diff.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      content: {description: Wanted content (text)., type: str, required: true}
      mode: {description: Octal mode as a string., type: str, default: "0600"}
  owner:
    description: Owner of every folder and file.
    type: str
    default: root
  group:
    description: Group of every folder and file.
    type: str
    default: root
  read:
    description: Files to read back (before any change); missing ones come back as null.
    type: list
    elements: path
    default: []
  exists:
    description: Paths to test for existence (before any change).
    type: list
    elements: path
    default: []
author: Tempo lab
"""

EXAMPLES = r"""
- name: Read the old drift profile and look for the install marker
  tempod_files:
    read: [/etc/tempo/drift.toml]
    exists: [/opt/tempo/venv/.tempo-source-abc]
  register: node

- name: Write the config and the key
  tempod_files:
    directories:
      - {path: /etc/tempo}
    files:
      - {path: /etc/tempo/tempod.toml, content: "{{ lookup('ansible.builtin.template', 'tempod.toml.j2') }}"}
    secret_files:
      - {path: /etc/tempo/tempo.key, content: "00ff...\n"}
"""

RETURN = r"""
contents:
  description: Path to text (or null when missing) for each path of I(read).
  type: dict
  returned: always
present:
  description: Path to true/false for each path of I(exists).
  type: dict
  returned: always
changed_paths:
  description: Folders and files that were (or in check mode would be) created or changed.
  type: list
  elements: str
  returned: always
"""

import grp
import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _attrs(module, path, mode, owner, group, changed):
    # these AnsibleModule helpers honour check mode and return whether anything changed
    changed = module.set_owner_if_different(path, owner, changed)
    changed = module.set_group_if_different(path, group, changed)
    return module.set_mode_if_different(path, mode, changed)


def _converge_dir(module, spec, owner, group):
    path = spec["path"]
    created = False
    if not os.path.isdir(path):
        created = True
        if not module.check_mode:
            os.makedirs(path, exist_ok=True)
    if created and module.check_mode:
        return True
    return _attrs(module, path, spec["mode"], owner, group, created)


def _converge_file(module, spec, owner, group, diffs, secret):
    path, mode = spec["path"], spec["mode"]
    want = to_bytes(spec["content"], errors="surrogate_or_strict")
    have = _read(path)
    rewrite = have != want
    if rewrite and not secret and module._diff:
        diffs.append({"before_header": path, "after_header": path,
                      "before": "" if have is None else to_text(have, errors="surrogate_or_replace"),
                      "after": spec["content"]})
    if rewrite and module.check_mode:
        return True
    if rewrite:
        fd, tmp = tempfile.mkstemp(prefix=".tempod-", dir=os.path.dirname(path))
        try:
            # Mode and owner are set on the temporary file and the rename is a plain
            # os.replace: AnsibleModule.atomic_move would give the new file the old
            # file's mode (or the umask's, when creating it) for a moment, and a key
            # must never be readable by others, not even briefly.
            os.fchmod(fd, int(mode, 8))
            os.fchown(fd, _uid(module, owner), _gid(module, group))
            with os.fdopen(fd, "wb") as fh:
                fh.write(want)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except Exception:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return _attrs(module, path, mode, owner, group, rewrite)


def _uid(module, owner):
    try:
        return int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
    except KeyError:
        module.fail_json(msg=f"no such user: {owner}")


def _gid(module, group):
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        module.fail_json(msg=f"no such group: {group}")


def _validate(module, directories, files):
    """Every problem found before anything is touched: a bad entry changes nothing."""
    for spec in directories + files:
        try:
            if not 0 <= int(spec["mode"], 8) <= 0o7777:
                raise ValueError
        except ValueError:
            module.fail_json(msg=f"{spec['path']}: mode {spec['mode']!r} is not an octal mode like '0644'")
        if not os.path.isabs(spec["path"]):
            module.fail_json(msg=f"{spec['path']}: paths must be absolute")
    wanted = {os.path.normpath(d["path"]) for d in directories}
    for spec in directories:
        if os.path.lexists(spec["path"]) and not os.path.isdir(spec["path"]):
            module.fail_json(msg=f"{spec['path']} exists and is not a folder")
    for spec in files:
        path = spec["path"]
        if os.path.lexists(path) and not os.path.isfile(path):
            module.fail_json(msg=f"{path} exists and is not a regular file")
        folder = os.path.dirname(os.path.normpath(path))
        if not os.path.isdir(folder) and folder not in wanted:
            module.fail_json(msg=f"cannot write {path}: its folder {folder} does not exist and is not in directories")


def main():
    entry = {"path": {"type": "path", "required": True},
             "content": {"type": "str", "required": True},
             "mode": {"type": "str", "default": "0644"}}
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": {"path": {"type": "path", "required": True},
                                        "mode": {"type": "str", "default": "0755"}}},
            "files": {"type": "list", "elements": "dict", "default": [], "options": entry},
            "secret_files": {"type": "list", "elements": "dict", "default": [],
                             "options": dict(entry, content={"type": "str", "required": True, "no_log": True},
                                             mode={"type": "str", "default": "0600"})},
            "owner": {"type": "str", "default": "root"},
            "group": {"type": "str", "default": "root"},
            "read": {"type": "list", "elements": "path", "default": []},
            "exists": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    _validate(module, p["directories"], p["files"] + p["secret_files"])
    # an unknown owner or group fails here, before any change
    _uid(module, p["owner"])
    _gid(module, p["group"])

    result = {"changed": False, "changed_paths": [],
              "contents": {}, "present": {path: os.path.lexists(path) for path in p["exists"]}}
    for path in p["read"]:
        data = _read(path)
        result["contents"][path] = None if data is None else to_text(data, errors="surrogate_or_replace")

    diffs = []
    for spec in p["directories"]:
        if _converge_dir(module, spec, p["owner"], p["group"]):
            result["changed_paths"].append(spec["path"])
    for secret, specs in ((False, p["files"]), (True, p["secret_files"])):
        for spec in specs:
            if _converge_file(module, spec, p["owner"], p["group"], diffs, secret):
                result["changed_paths"].append(spec["path"])
    result["changed"] = bool(result["changed_paths"])
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()

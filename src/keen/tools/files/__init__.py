"""File tools: project tree, reading, writing (all or nothing), exact-text edits, deletion.

Every path goes through the `Workspace`, which opens it race-free; results name files by
workspace-relative paths.
"""

from __future__ import annotations

from keen.tools.files.delete import delete_files
from keen.tools.files.edit import edit_file
from keen.tools.files.read import read_files
from keen.tools.files.tree import get_project_tree
from keen.tools.files.write import write_files
from keen.tools.registry import Tool

TOOLS: list[Tool] = [get_project_tree, read_files, write_files, edit_file, delete_files]

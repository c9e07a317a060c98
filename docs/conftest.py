"""pytest: the Markdown pages of docs/ are doctests; Sphinx's files and outputs are not."""

collect_ignore = ["conf.py", "_build", "_generated"]
